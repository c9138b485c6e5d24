#!/usr/bin/env bash
# Regenerates the TypeScript types for proto/ into shared/src/gen/ (committed).
# The loader options here must match PROTO_LOADER_OPTIONS in shared/src/grpc/loader.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf shared/src/gen
npx --no-install proto-loader-gen-types doppel/v1/dataplane.proto doppel/v1/coordinator.proto doppel/v1/repository.proto \
  --grpcLib=@grpc/grpc-js --longs=Number --enums=String --defaults --oneofs \
  --includeComments --importFileExtension=.js \
  --outDir=shared/src/gen --includeDirs proto
# The generator types its client constructors with `any`; `never` parameters and an `unknown` result
# express the same constraint without `any` (we hold our tree, generated code included, to no-any).
sed -i 's/new (\.\.\.args: any) => any/new (...args: never) => unknown/' shared/src/gen/*.ts
