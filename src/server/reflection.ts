import { create, toBinary, type DescEnum, type DescFile, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema } from '@bufbuild/protobuf/wkt';
import { ServerReflection as ReflectionV1, type ServerReflectionRequest, type ServerReflectionResponseSchema } from '../gen/grpc/reflection/v1/reflection_pb.js';
import { ServerReflection as ReflectionV1Alpha } from '../gen/grpc/reflection/v1alpha/reflection_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { GrpcServer } from './grpc.js';

type Response = MessageInitShape<typeof ServerReflectionResponseSchema>;

/** An index of every symbol and file reachable from the services on a server. */
interface SymbolIndex {
  services: string[];
  byFile: Map<string, DescFile>;
  bySymbol: Map<string, DescFile>;
}

function buildIndex(services: string[], roots: DescFile[]): SymbolIndex {
  const byFile = new Map<string, DescFile>();
  const bySymbol = new Map<string, DescFile>();
  const addMessage = (file: DescFile, m: DescMessage | DescEnum): void => {
    bySymbol.set(m.typeName, file);
    if (m.kind === 'message') {
      for (const nested of [...m.nestedMessages, ...m.nestedEnums]) addMessage(file, nested);
    }
  };
  const visit = (file: DescFile): void => {
    if (byFile.has(file.proto.name)) return;
    byFile.set(file.proto.name, file);
    for (const m of [...file.messages, ...file.enums]) addMessage(file, m);
    for (const s of file.services) {
      bySymbol.set(s.typeName, file);
      for (const m of s.methods) bySymbol.set(`${s.typeName}.${m.name}`, file);
    }
    for (const dep of file.dependencies) visit(dep);
  };
  roots.forEach(visit);
  return { services, byFile, bySymbol };
}

/** The file and everything it imports, deepest first, each serialised once. */
function withDependencies(file: DescFile): Uint8Array[] {
  const seen = new Set<string>();
  const out: Uint8Array[] = [];
  const visit = (f: DescFile): void => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, create(FileDescriptorProtoSchema, f.proto)));
    f.dependencies.forEach(visit);
  };
  visit(file);
  return out;
}

function answer(index: SymbolIndex, req: ServerReflectionRequest): Response {
  const base = { validHost: req.host, originalRequest: req };
  const notFound = (what: string): Response => ({ ...base, messageResponse: { case: 'errorResponse', value: { errorCode: 5, errorMessage: `${what} not found` } } });
  const files = (file: DescFile | undefined, what: string): Response =>
    file ? { ...base, messageResponse: { case: 'fileDescriptorResponse', value: { fileDescriptorProto: withDependencies(file) } } } : notFound(what);
  const m = req.messageRequest;
  switch (m.case) {
    case 'listServices':
      return { ...base, messageResponse: { case: 'listServicesResponse', value: { service: index.services.map((name) => ({ name })) } } };
    case 'fileByFilename':
      return files(index.byFile.get(m.value), `file ${m.value}`);
    case 'fileContainingSymbol':
      return files(index.bySymbol.get(m.value.replace(/^\./, '')), `symbol ${m.value}`);
    case 'fileContainingExtension':
      return notFound(`extension ${m.value.extensionNumber} of ${m.value.containingType}`);
    case 'allExtensionNumbersOfType':
      return index.bySymbol.has(m.value)
        ? { ...base, messageResponse: { case: 'allExtensionNumbersResponse', value: { baseTypeName: m.value, extensionNumber: [] } } }
        : notFound(`type ${m.value}`);
    default:
      return { ...base, messageResponse: { case: 'errorResponse', value: { errorCode: 3, errorMessage: 'empty reflection request' } } };
  }
}

/**
 * Adds gRPC server reflection (v1 and v1alpha) to a server, so `grpcurl list` and `describe` work.
 * Call after every other service has been added: the index is built at start from the services present.
 */
export function addReflection(server: GrpcServer): void {
  let index: SymbolIndex | undefined;
  const getIndex = (): SymbolIndex => (index ??= buildIndex(server.serviceNames(), server.serviceFiles()));
  const impl = {
    async serverReflectionInfo(requests: AsyncIterable<ServerReflectionRequest>, send: (r: Response) => Promise<void>) {
      for await (const req of requests) await send(answer(getIndex(), req));
    },
  };
  server.addService(ReflectionV1, impl);
  // v1alpha has the same messages under another package: the same answers encode identically.
  server.addService(ReflectionV1Alpha, impl as never);
}
