/**
 * Loads proto/ at run time with the same options that scripts/gen-proto.sh
 * gives proto-loader-gen-types, so the generated types describe the runtime objects.
 */
import { loadSync, type Options } from '@grpc/proto-loader';
import { loadPackageDefinition, type GrpcObject } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { ProtoGrpcType as DataPlaneProto } from '../gen/dataplane.js';
import type { ProtoGrpcType as CoordinatorProto } from '../gen/coordinator.js';
import type { ProtoGrpcType as RepositoryProto } from '../gen/repository.js';

export const PROTO_LOADER_OPTIONS: Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Finds proto/ from both the source tree and dist/. */
export function protoDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'proto');
    if (existsSync(path.join(candidate, 'doppel'))) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('proto/ directory not found next to the doppel sources');
}

function load(file: string): GrpcObject {
  const def = loadSync(file, { ...PROTO_LOADER_OPTIONS, includeDirs: [protoDir()] });
  return loadPackageDefinition(def);
}

let dataPlane: DataPlaneProto | undefined;
let coordinator: CoordinatorProto | undefined;
let repository: RepositoryProto | undefined;

export function loadDataPlaneProto(): DataPlaneProto {
  dataPlane ??= load('doppel/v1/dataplane.proto') as unknown as DataPlaneProto;
  return dataPlane;
}

export function loadCoordinatorProto(): CoordinatorProto {
  coordinator ??= load('doppel/v1/coordinator.proto') as unknown as CoordinatorProto;
  return coordinator;
}

export function loadRepositoryProto(): RepositoryProto {
  repository ??= load('doppel/v1/repository.proto') as unknown as RepositoryProto;
  return repository;
}

/** Largest gRPC message the data plane accepts (a batch is at most 256 KiB raw). */
export const DATA_PLANE_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * Largest gRPC message of the backup repository, on server and client: one raw
 * 4 MiB chunk (LZ4 could not shrink it) plus framing, or an index of up to about
 * 240,000 digests (a disk of about 940 GiB at 4 MiB chunks).
 */
export const REPOSITORY_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;
