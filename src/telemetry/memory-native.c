/*
 * Heimdall's native memory calls (Node-API), built by scripts/build-native.mjs into
 * dist/native/memory.node. Loaded by memory-native.ts; everything else in the agent is JavaScript.
 *
 *   unmapPages(start, length)  madvise(MADV_DONTNEED) on [start, start + length): this process's
 *                              page-table entries for the range go (its resident memory falls); the
 *                              page cache keeps the pages, and an access maps them again. ONLY for a
 *                              read-only private file mapping with no written page, in memory or
 *                              swapped out: a written page would be lost and read again from the
 *                              file. Throws with errno's text on failure.
 *   trimHeap()                 glibc's malloc_trim(0): gives the free memory of every malloc arena
 *                              back to the kernel. Returns whether any was given back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <node_api.h>
#include <string.h>
#include <sys/mman.h>

static napi_value unmap_pages(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  double start = 0, length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 2 ||
      napi_get_value_double(env, argv[0], &start) != napi_ok || napi_get_value_double(env, argv[1], &length) != napi_ok ||
      !(start >= 0 && length > 0 && isfinite(start + length))) {
    napi_throw_type_error(env, NULL, "unmapPages(start, length): two positive numbers");
    return NULL;
  }
  if (madvise((void *)(unsigned long)start, (size_t)length, MADV_DONTNEED) != 0) napi_throw_error(env, NULL, strerror(errno));
  return NULL;
}

static napi_value trim_heap(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "unmapPages", NAPI_AUTO_LENGTH, unmap_pages, NULL, &fn);
  napi_set_named_property(env, exports, "unmapPages", fn);
  napi_create_function(env, "trimHeap", NAPI_AUTO_LENGTH, trim_heap, NULL, &fn);
  napi_set_named_property(env, exports, "trimHeap", fn);
  return exports;
}
