import { readFileSync } from 'node:fs';

/** Listener TLS settings as they appear in the config. */
export interface ListenerTls {
  cert_file: string;
  key_file: string;
  client_ca_file?: string | undefined;
  require_client_cert: boolean;
}

/** PEM material for a TLS listener, read from disk once at start. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** Client CA for mTLS, when configured. */
  ca: Buffer | undefined;
  requireClientCert: boolean;
}

/** Reads the PEM files of a listener's TLS settings; throws naming the file that cannot be read. */
export function readTls(tls: ListenerTls): TlsMaterial {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`cannot read TLS ${what} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  return {
    cert: read(tls.cert_file, 'certificate'),
    key: read(tls.key_file, 'key'),
    ca: tls.client_ca_file ? read(tls.client_ca_file, 'client CA') : undefined,
    requireClientCert: tls.client_ca_file !== undefined && tls.require_client_cert,
  };
}
