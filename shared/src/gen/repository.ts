import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { BackupManifest as _doppel_v1_BackupManifest, BackupManifest__Output as _doppel_v1_BackupManifest__Output } from './doppel/v1/BackupManifest.js';
import type { BackupRef as _doppel_v1_BackupRef, BackupRef__Output as _doppel_v1_BackupRef__Output } from './doppel/v1/BackupRef.js';
import type { BadChunk as _doppel_v1_BadChunk, BadChunk__Output as _doppel_v1_BadChunk__Output } from './doppel/v1/BadChunk.js';
import type { Chunk as _doppel_v1_Chunk, Chunk__Output as _doppel_v1_Chunk__Output } from './doppel/v1/Chunk.js';
import type { CommitBackupRequest as _doppel_v1_CommitBackupRequest, CommitBackupRequest__Output as _doppel_v1_CommitBackupRequest__Output } from './doppel/v1/CommitBackupRequest.js';
import type { DiskIndex as _doppel_v1_DiskIndex, DiskIndex__Output as _doppel_v1_DiskIndex__Output } from './doppel/v1/DiskIndex.js';
import type { DiskManifest as _doppel_v1_DiskManifest, DiskManifest__Output as _doppel_v1_DiskManifest__Output } from './doppel/v1/DiskManifest.js';
import type { IndexRef as _doppel_v1_IndexRef, IndexRef__Output as _doppel_v1_IndexRef__Output } from './doppel/v1/IndexRef.js';
import type { ListBackupsReply as _doppel_v1_ListBackupsReply, ListBackupsReply__Output as _doppel_v1_ListBackupsReply__Output } from './doppel/v1/ListBackupsReply.js';
import type { ListBackupsRequest as _doppel_v1_ListBackupsRequest, ListBackupsRequest__Output as _doppel_v1_ListBackupsRequest__Output } from './doppel/v1/ListBackupsRequest.js';
import type { MissingChunksReply as _doppel_v1_MissingChunksReply, MissingChunksReply__Output as _doppel_v1_MissingChunksReply__Output } from './doppel/v1/MissingChunksReply.js';
import type { MissingChunksRequest as _doppel_v1_MissingChunksRequest, MissingChunksRequest__Output as _doppel_v1_MissingChunksRequest__Output } from './doppel/v1/MissingChunksRequest.js';
import type { PutChunksReply as _doppel_v1_PutChunksReply, PutChunksReply__Output as _doppel_v1_PutChunksReply__Output } from './doppel/v1/PutChunksReply.js';
import type { ReadChunksRequest as _doppel_v1_ReadChunksRequest, ReadChunksRequest__Output as _doppel_v1_ReadChunksRequest__Output } from './doppel/v1/ReadChunksRequest.js';
import type { RepositoryClient as _doppel_v1_RepositoryClient, RepositoryDefinition as _doppel_v1_RepositoryDefinition } from './doppel/v1/Repository.js';
import type { RepositoryInfo as _doppel_v1_RepositoryInfo, RepositoryInfo__Output as _doppel_v1_RepositoryInfo__Output } from './doppel/v1/RepositoryInfo.js';
import type { RepositoryInfoRequest as _doppel_v1_RepositoryInfoRequest, RepositoryInfoRequest__Output as _doppel_v1_RepositoryInfoRequest__Output } from './doppel/v1/RepositoryInfoRequest.js';
import type { VerifyProgress as _doppel_v1_VerifyProgress, VerifyProgress__Output as _doppel_v1_VerifyProgress__Output } from './doppel/v1/VerifyProgress.js';

type SubtypeConstructor<Constructor extends new (...args: never) => unknown, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  doppel: {
    v1: {
      BackupManifest: MessageTypeDefinition<_doppel_v1_BackupManifest, _doppel_v1_BackupManifest__Output>
      BackupRef: MessageTypeDefinition<_doppel_v1_BackupRef, _doppel_v1_BackupRef__Output>
      BadChunk: MessageTypeDefinition<_doppel_v1_BadChunk, _doppel_v1_BadChunk__Output>
      Chunk: MessageTypeDefinition<_doppel_v1_Chunk, _doppel_v1_Chunk__Output>
      CommitBackupRequest: MessageTypeDefinition<_doppel_v1_CommitBackupRequest, _doppel_v1_CommitBackupRequest__Output>
      DiskIndex: MessageTypeDefinition<_doppel_v1_DiskIndex, _doppel_v1_DiskIndex__Output>
      DiskManifest: MessageTypeDefinition<_doppel_v1_DiskManifest, _doppel_v1_DiskManifest__Output>
      IndexRef: MessageTypeDefinition<_doppel_v1_IndexRef, _doppel_v1_IndexRef__Output>
      ListBackupsReply: MessageTypeDefinition<_doppel_v1_ListBackupsReply, _doppel_v1_ListBackupsReply__Output>
      ListBackupsRequest: MessageTypeDefinition<_doppel_v1_ListBackupsRequest, _doppel_v1_ListBackupsRequest__Output>
      MissingChunksReply: MessageTypeDefinition<_doppel_v1_MissingChunksReply, _doppel_v1_MissingChunksReply__Output>
      MissingChunksRequest: MessageTypeDefinition<_doppel_v1_MissingChunksRequest, _doppel_v1_MissingChunksRequest__Output>
      PutChunksReply: MessageTypeDefinition<_doppel_v1_PutChunksReply, _doppel_v1_PutChunksReply__Output>
      ReadChunksRequest: MessageTypeDefinition<_doppel_v1_ReadChunksRequest, _doppel_v1_ReadChunksRequest__Output>
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
      Repository: SubtypeConstructor<typeof grpc.Client, _doppel_v1_RepositoryClient> & { service: _doppel_v1_RepositoryDefinition }
      RepositoryInfo: MessageTypeDefinition<_doppel_v1_RepositoryInfo, _doppel_v1_RepositoryInfo__Output>
      RepositoryInfoRequest: MessageTypeDefinition<_doppel_v1_RepositoryInfoRequest, _doppel_v1_RepositoryInfoRequest__Output>
      VerifyProgress: MessageTypeDefinition<_doppel_v1_VerifyProgress, _doppel_v1_VerifyProgress__Output>
    }
  }
}

