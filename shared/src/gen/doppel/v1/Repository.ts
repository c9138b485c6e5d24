// Original file: proto/doppel/v1/repository.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { BackupManifest as _doppel_v1_BackupManifest, BackupManifest__Output as _doppel_v1_BackupManifest__Output } from '../../doppel/v1/BackupManifest.js';
import type { BackupRef as _doppel_v1_BackupRef, BackupRef__Output as _doppel_v1_BackupRef__Output } from '../../doppel/v1/BackupRef.js';
import type { Chunk as _doppel_v1_Chunk, Chunk__Output as _doppel_v1_Chunk__Output } from '../../doppel/v1/Chunk.js';
import type { CommitBackupRequest as _doppel_v1_CommitBackupRequest, CommitBackupRequest__Output as _doppel_v1_CommitBackupRequest__Output } from '../../doppel/v1/CommitBackupRequest.js';
import type { DiskIndex as _doppel_v1_DiskIndex, DiskIndex__Output as _doppel_v1_DiskIndex__Output } from '../../doppel/v1/DiskIndex.js';
import type { IndexRef as _doppel_v1_IndexRef, IndexRef__Output as _doppel_v1_IndexRef__Output } from '../../doppel/v1/IndexRef.js';
import type { ListBackupsReply as _doppel_v1_ListBackupsReply, ListBackupsReply__Output as _doppel_v1_ListBackupsReply__Output } from '../../doppel/v1/ListBackupsReply.js';
import type { ListBackupsRequest as _doppel_v1_ListBackupsRequest, ListBackupsRequest__Output as _doppel_v1_ListBackupsRequest__Output } from '../../doppel/v1/ListBackupsRequest.js';
import type { MissingChunksReply as _doppel_v1_MissingChunksReply, MissingChunksReply__Output as _doppel_v1_MissingChunksReply__Output } from '../../doppel/v1/MissingChunksReply.js';
import type { MissingChunksRequest as _doppel_v1_MissingChunksRequest, MissingChunksRequest__Output as _doppel_v1_MissingChunksRequest__Output } from '../../doppel/v1/MissingChunksRequest.js';
import type { PutChunksReply as _doppel_v1_PutChunksReply, PutChunksReply__Output as _doppel_v1_PutChunksReply__Output } from '../../doppel/v1/PutChunksReply.js';
import type { ReadChunksRequest as _doppel_v1_ReadChunksRequest, ReadChunksRequest__Output as _doppel_v1_ReadChunksRequest__Output } from '../../doppel/v1/ReadChunksRequest.js';
import type { RepositoryInfo as _doppel_v1_RepositoryInfo, RepositoryInfo__Output as _doppel_v1_RepositoryInfo__Output } from '../../doppel/v1/RepositoryInfo.js';
import type { RepositoryInfoRequest as _doppel_v1_RepositoryInfoRequest, RepositoryInfoRequest__Output as _doppel_v1_RepositoryInfoRequest__Output } from '../../doppel/v1/RepositoryInfoRequest.js';
import type { VerifyProgress as _doppel_v1_VerifyProgress, VerifyProgress__Output as _doppel_v1_VerifyProgress__Output } from '../../doppel/v1/VerifyProgress.js';

/**
 * The content-addressed backup repository (in the manner of Proxmox Backup
 * Server and restic). Disks are cut into fixed-size chunks; each chunk is named
 * by the SHA-256 of its raw content, LZ4-compressed and stored once. A per-disk
 * index lists the digests; a manifest commits the backup. All-zero chunks are
 * never stored: an index lists them with an empty digest.
 * 
 * An upload asks which digests are missing first and sends only those. A
 * backup is visible only once CommitBackup has written its manifest, which it
 * refuses while any chunk the indexes reference is missing.
 */
export interface RepositoryClient extends grpc.Client {
  /**
   * Writes the indexes and then the manifest. FAILED_PRECONDITION names the first
   * referenced chunk the repository lacks; ALREADY_EXISTS when the id is taken.
   */
  CommitBackup(argument: _doppel_v1_CommitBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  CommitBackup(argument: _doppel_v1_CommitBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  CommitBackup(argument: _doppel_v1_CommitBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  CommitBackup(argument: _doppel_v1_CommitBackupRequest, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  /**
   * Writes the indexes and then the manifest. FAILED_PRECONDITION names the first
   * referenced chunk the repository lacks; ALREADY_EXISTS when the id is taken.
   */
  commitBackup(argument: _doppel_v1_CommitBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  commitBackup(argument: _doppel_v1_CommitBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  commitBackup(argument: _doppel_v1_CommitBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  commitBackup(argument: _doppel_v1_CommitBackupRequest, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  
  GetIndex(argument: _doppel_v1_IndexRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  GetIndex(argument: _doppel_v1_IndexRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  GetIndex(argument: _doppel_v1_IndexRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  GetIndex(argument: _doppel_v1_IndexRef, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  getIndex(argument: _doppel_v1_IndexRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  getIndex(argument: _doppel_v1_IndexRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  getIndex(argument: _doppel_v1_IndexRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  getIndex(argument: _doppel_v1_IndexRef, callback: grpc.requestCallback<_doppel_v1_DiskIndex__Output>): grpc.ClientUnaryCall;
  
  /**
   * The repository's fixed parameters (chunk size, request limits).
   */
  GetInfo(argument: _doppel_v1_RepositoryInfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  GetInfo(argument: _doppel_v1_RepositoryInfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  GetInfo(argument: _doppel_v1_RepositoryInfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  GetInfo(argument: _doppel_v1_RepositoryInfoRequest, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  /**
   * The repository's fixed parameters (chunk size, request limits).
   */
  getInfo(argument: _doppel_v1_RepositoryInfoRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  getInfo(argument: _doppel_v1_RepositoryInfoRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  getInfo(argument: _doppel_v1_RepositoryInfoRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  getInfo(argument: _doppel_v1_RepositoryInfoRequest, callback: grpc.requestCallback<_doppel_v1_RepositoryInfo__Output>): grpc.ClientUnaryCall;
  
  GetManifest(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  GetManifest(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  GetManifest(argument: _doppel_v1_BackupRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  GetManifest(argument: _doppel_v1_BackupRef, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  getManifest(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  getManifest(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  getManifest(argument: _doppel_v1_BackupRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  getManifest(argument: _doppel_v1_BackupRef, callback: grpc.requestCallback<_doppel_v1_BackupManifest__Output>): grpc.ClientUnaryCall;
  
  ListBackups(argument: _doppel_v1_ListBackupsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_ListBackupsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_ListBackupsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_ListBackupsRequest, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_ListBackupsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_ListBackupsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_ListBackupsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_ListBackupsRequest, callback: grpc.requestCallback<_doppel_v1_ListBackupsReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * Which of these digests the repository does not hold (at most 4096 per request).
   */
  MissingChunks(argument: _doppel_v1_MissingChunksRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  MissingChunks(argument: _doppel_v1_MissingChunksRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  MissingChunks(argument: _doppel_v1_MissingChunksRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  MissingChunks(argument: _doppel_v1_MissingChunksRequest, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  /**
   * Which of these digests the repository does not hold (at most 4096 per request).
   */
  missingChunks(argument: _doppel_v1_MissingChunksRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  missingChunks(argument: _doppel_v1_MissingChunksRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  missingChunks(argument: _doppel_v1_MissingChunksRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  missingChunks(argument: _doppel_v1_MissingChunksRequest, callback: grpc.requestCallback<_doppel_v1_MissingChunksReply__Output>): grpc.ClientUnaryCall;
  
  /**
   * Stores chunks. The server decompresses and re-hashes each one and fails the
   * call (DATA_LOSS, naming the digest) when a chunk does not match its digest.
   * Chunks received before a failure stay stored.
   */
  PutChunks(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  PutChunks(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  PutChunks(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  PutChunks(callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  /**
   * Stores chunks. The server decompresses and re-hashes each one and fails the
   * call (DATA_LOSS, naming the digest) when a chunk does not match its digest.
   * Chunks received before a failure stay stored.
   */
  putChunks(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  putChunks(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  putChunks(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  putChunks(callback: grpc.requestCallback<_doppel_v1_PutChunksReply__Output>): grpc.ClientWritableStream<_doppel_v1_Chunk>;
  
  /**
   * Streams the chunks in request order (at most 256 per request), each checked
   * against its digest before it leaves the server.
   */
  ReadChunks(argument: _doppel_v1_ReadChunksRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Chunk__Output>;
  ReadChunks(argument: _doppel_v1_ReadChunksRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Chunk__Output>;
  /**
   * Streams the chunks in request order (at most 256 per request), each checked
   * against its digest before it leaves the server.
   */
  readChunks(argument: _doppel_v1_ReadChunksRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Chunk__Output>;
  readChunks(argument: _doppel_v1_ReadChunksRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Chunk__Output>;
  
  /**
   * Re-hashes every chunk a backup references and checks its indexes against
   * the manifest. Progress messages; the last one has done = true.
   */
  VerifyBackup(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyProgress__Output>;
  VerifyBackup(argument: _doppel_v1_BackupRef, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyProgress__Output>;
  /**
   * Re-hashes every chunk a backup references and checks its indexes against
   * the manifest. Progress messages; the last one has done = true.
   */
  verifyBackup(argument: _doppel_v1_BackupRef, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyProgress__Output>;
  verifyBackup(argument: _doppel_v1_BackupRef, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyProgress__Output>;
  
}

/**
 * The content-addressed backup repository (in the manner of Proxmox Backup
 * Server and restic). Disks are cut into fixed-size chunks; each chunk is named
 * by the SHA-256 of its raw content, LZ4-compressed and stored once. A per-disk
 * index lists the digests; a manifest commits the backup. All-zero chunks are
 * never stored: an index lists them with an empty digest.
 * 
 * An upload asks which digests are missing first and sends only those. A
 * backup is visible only once CommitBackup has written its manifest, which it
 * refuses while any chunk the indexes reference is missing.
 */
export interface RepositoryHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Writes the indexes and then the manifest. FAILED_PRECONDITION names the first
   * referenced chunk the repository lacks; ALREADY_EXISTS when the id is taken.
   */
  CommitBackup: grpc.handleUnaryCall<_doppel_v1_CommitBackupRequest__Output, _doppel_v1_BackupManifest>;
  
  GetIndex: grpc.handleUnaryCall<_doppel_v1_IndexRef__Output, _doppel_v1_DiskIndex>;
  
  /**
   * The repository's fixed parameters (chunk size, request limits).
   */
  GetInfo: grpc.handleUnaryCall<_doppel_v1_RepositoryInfoRequest__Output, _doppel_v1_RepositoryInfo>;
  
  GetManifest: grpc.handleUnaryCall<_doppel_v1_BackupRef__Output, _doppel_v1_BackupManifest>;
  
  ListBackups: grpc.handleUnaryCall<_doppel_v1_ListBackupsRequest__Output, _doppel_v1_ListBackupsReply>;
  
  /**
   * Which of these digests the repository does not hold (at most 4096 per request).
   */
  MissingChunks: grpc.handleUnaryCall<_doppel_v1_MissingChunksRequest__Output, _doppel_v1_MissingChunksReply>;
  
  /**
   * Stores chunks. The server decompresses and re-hashes each one and fails the
   * call (DATA_LOSS, naming the digest) when a chunk does not match its digest.
   * Chunks received before a failure stay stored.
   */
  PutChunks: grpc.handleClientStreamingCall<_doppel_v1_Chunk__Output, _doppel_v1_PutChunksReply>;
  
  /**
   * Streams the chunks in request order (at most 256 per request), each checked
   * against its digest before it leaves the server.
   */
  ReadChunks: grpc.handleServerStreamingCall<_doppel_v1_ReadChunksRequest__Output, _doppel_v1_Chunk>;
  
  /**
   * Re-hashes every chunk a backup references and checks its indexes against
   * the manifest. Progress messages; the last one has done = true.
   */
  VerifyBackup: grpc.handleServerStreamingCall<_doppel_v1_BackupRef__Output, _doppel_v1_VerifyProgress>;
  
}

export interface RepositoryDefinition extends grpc.ServiceDefinition {
  CommitBackup: MethodDefinition<_doppel_v1_CommitBackupRequest, _doppel_v1_BackupManifest, _doppel_v1_CommitBackupRequest__Output, _doppel_v1_BackupManifest__Output>
  GetIndex: MethodDefinition<_doppel_v1_IndexRef, _doppel_v1_DiskIndex, _doppel_v1_IndexRef__Output, _doppel_v1_DiskIndex__Output>
  GetInfo: MethodDefinition<_doppel_v1_RepositoryInfoRequest, _doppel_v1_RepositoryInfo, _doppel_v1_RepositoryInfoRequest__Output, _doppel_v1_RepositoryInfo__Output>
  GetManifest: MethodDefinition<_doppel_v1_BackupRef, _doppel_v1_BackupManifest, _doppel_v1_BackupRef__Output, _doppel_v1_BackupManifest__Output>
  ListBackups: MethodDefinition<_doppel_v1_ListBackupsRequest, _doppel_v1_ListBackupsReply, _doppel_v1_ListBackupsRequest__Output, _doppel_v1_ListBackupsReply__Output>
  MissingChunks: MethodDefinition<_doppel_v1_MissingChunksRequest, _doppel_v1_MissingChunksReply, _doppel_v1_MissingChunksRequest__Output, _doppel_v1_MissingChunksReply__Output>
  PutChunks: MethodDefinition<_doppel_v1_Chunk, _doppel_v1_PutChunksReply, _doppel_v1_Chunk__Output, _doppel_v1_PutChunksReply__Output>
  ReadChunks: MethodDefinition<_doppel_v1_ReadChunksRequest, _doppel_v1_Chunk, _doppel_v1_ReadChunksRequest__Output, _doppel_v1_Chunk__Output>
  VerifyBackup: MethodDefinition<_doppel_v1_BackupRef, _doppel_v1_VerifyProgress, _doppel_v1_BackupRef__Output, _doppel_v1_VerifyProgress__Output>
}
