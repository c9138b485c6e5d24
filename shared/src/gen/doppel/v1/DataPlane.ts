// Original file: proto/doppel/v1/dataplane.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { DiskCopySummary as _doppel_v1_DiskCopySummary, DiskCopySummary__Output as _doppel_v1_DiskCopySummary__Output } from '../../doppel/v1/DiskCopySummary.js';
import type { DiskFrame as _doppel_v1_DiskFrame, DiskFrame__Output as _doppel_v1_DiskFrame__Output } from '../../doppel/v1/DiskFrame.js';
import type { MigrationAck as _doppel_v1_MigrationAck, MigrationAck__Output as _doppel_v1_MigrationAck__Output } from '../../doppel/v1/MigrationAck.js';
import type { MigrationFrame as _doppel_v1_MigrationFrame, MigrationFrame__Output as _doppel_v1_MigrationFrame__Output } from '../../doppel/v1/MigrationFrame.js';
import type { PageFrame as _doppel_v1_PageFrame, PageFrame__Output as _doppel_v1_PageFrame__Output } from '../../doppel/v1/PageFrame.js';
import type { StreamAck as _doppel_v1_StreamAck, StreamAck__Output as _doppel_v1_StreamAck__Output } from '../../doppel/v1/StreamAck.js';
import type { VerifyCloneReply as _doppel_v1_VerifyCloneReply, VerifyCloneReply__Output as _doppel_v1_VerifyCloneReply__Output } from '../../doppel/v1/VerifyCloneReply.js';
import type { VerifyCloneRequest as _doppel_v1_VerifyCloneRequest, VerifyCloneRequest__Output as _doppel_v1_VerifyCloneRequest__Output } from '../../doppel/v1/VerifyCloneRequest.js';

/**
 * The agent-to-agent data plane. One client stream carries one live clone (or a
 * bandwidth probe) from the source agent to the target agent.
 */
export interface DataPlaneClient extends grpc.Client {
  /**
   * Gives a clone its disks once its memory arrived: the source streams the
   * allocated blocks of its point-in-time disk snapshot (taken in the suspended
   * window), or, on a datastore both hosts share, names the frozen layers the
   * clone overlays instead. The source's changed-block tracking goes along, so
   * a backup made from the clone can be incremental.
   */
  StreamDisk(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  StreamDisk(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  StreamDisk(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  StreamDisk(callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  /**
   * Gives a clone its disks once its memory arrived: the source streams the
   * allocated blocks of its point-in-time disk snapshot (taken in the suspended
   * window), or, on a datastore both hosts share, names the frozen layers the
   * clone overlays instead. The source's changed-block tracking goes along, so
   * a backup made from the clone can be incremental.
   */
  streamDisk(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  streamDisk(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  streamDisk(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  streamDisk(callback: grpc.requestCallback<_doppel_v1_DiskCopySummary__Output>): grpc.ClientWritableStream<_doppel_v1_DiskFrame>;
  
  /**
   * A live clone on the qemu driver: the source agent carries QEMU's own
   * migration stream, cut into LZ4 frames (each with a sequence number and a
   * CRC), into the clone the target prepared with `-S -incoming defer`. The
   * target acknowledges what it has handed to its QEMU; once the source
   * half-closes, it answers with a summary when the clone's QEMU has taken
   * the whole migration (paused, its disks to come with StreamDisk). An error
   * status means the clone was discarded. Authorized by the clone's `pages`
   * stream token.
   */
  StreamMigration(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_MigrationFrame, _doppel_v1_MigrationAck__Output>;
  StreamMigration(options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_MigrationFrame, _doppel_v1_MigrationAck__Output>;
  /**
   * A live clone on the qemu driver: the source agent carries QEMU's own
   * migration stream, cut into LZ4 frames (each with a sequence number and a
   * CRC), into the clone the target prepared with `-S -incoming defer`. The
   * target acknowledges what it has handed to its QEMU; once the source
   * half-closes, it answers with a summary when the clone's QEMU has taken
   * the whole migration (paused, its disks to come with StreamDisk). An error
   * status means the clone was discarded. Authorized by the clone's `pages`
   * stream token.
   */
  streamMigration(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_MigrationFrame, _doppel_v1_MigrationAck__Output>;
  streamMigration(options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_MigrationFrame, _doppel_v1_MigrationAck__Output>;
  
  /**
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target acknowledges each round once it has applied
   * it, and answers the end of the stream with a summary. An error status means
   * the clone was discarded.
   */
  StreamPages(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_PageFrame, _doppel_v1_StreamAck__Output>;
  StreamPages(options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_PageFrame, _doppel_v1_StreamAck__Output>;
  /**
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target acknowledges each round once it has applied
   * it, and answers the end of the stream with a summary. An error status means
   * the clone was discarded.
   */
  streamPages(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_PageFrame, _doppel_v1_StreamAck__Output>;
  streamPages(options?: grpc.CallOptions): grpc.ClientDuplexStream<_doppel_v1_PageFrame, _doppel_v1_StreamAck__Output>;
  
  /**
   * Hashes a clone the target received, for verification outside the downtime window.
   */
  VerifyClone(argument: _doppel_v1_VerifyCloneRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  VerifyClone(argument: _doppel_v1_VerifyCloneRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  VerifyClone(argument: _doppel_v1_VerifyCloneRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  VerifyClone(argument: _doppel_v1_VerifyCloneRequest, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  /**
   * Hashes a clone the target received, for verification outside the downtime window.
   */
  verifyClone(argument: _doppel_v1_VerifyCloneRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  verifyClone(argument: _doppel_v1_VerifyCloneRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  verifyClone(argument: _doppel_v1_VerifyCloneRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  verifyClone(argument: _doppel_v1_VerifyCloneRequest, callback: grpc.requestCallback<_doppel_v1_VerifyCloneReply__Output>): grpc.ClientUnaryCall;
  
}

/**
 * The agent-to-agent data plane. One client stream carries one live clone (or a
 * bandwidth probe) from the source agent to the target agent.
 */
export interface DataPlaneHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Gives a clone its disks once its memory arrived: the source streams the
   * allocated blocks of its point-in-time disk snapshot (taken in the suspended
   * window), or, on a datastore both hosts share, names the frozen layers the
   * clone overlays instead. The source's changed-block tracking goes along, so
   * a backup made from the clone can be incremental.
   */
  StreamDisk: grpc.handleClientStreamingCall<_doppel_v1_DiskFrame__Output, _doppel_v1_DiskCopySummary>;
  
  /**
   * A live clone on the qemu driver: the source agent carries QEMU's own
   * migration stream, cut into LZ4 frames (each with a sequence number and a
   * CRC), into the clone the target prepared with `-S -incoming defer`. The
   * target acknowledges what it has handed to its QEMU; once the source
   * half-closes, it answers with a summary when the clone's QEMU has taken
   * the whole migration (paused, its disks to come with StreamDisk). An error
   * status means the clone was discarded. Authorized by the clone's `pages`
   * stream token.
   */
  StreamMigration: grpc.handleBidiStreamingCall<_doppel_v1_MigrationFrame__Output, _doppel_v1_MigrationAck>;
  
  /**
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target acknowledges each round once it has applied
   * it, and answers the end of the stream with a summary. An error status means
   * the clone was discarded.
   */
  StreamPages: grpc.handleBidiStreamingCall<_doppel_v1_PageFrame__Output, _doppel_v1_StreamAck>;
  
  /**
   * Hashes a clone the target received, for verification outside the downtime window.
   */
  VerifyClone: grpc.handleUnaryCall<_doppel_v1_VerifyCloneRequest__Output, _doppel_v1_VerifyCloneReply>;
  
}

export interface DataPlaneDefinition extends grpc.ServiceDefinition {
  StreamDisk: MethodDefinition<_doppel_v1_DiskFrame, _doppel_v1_DiskCopySummary, _doppel_v1_DiskFrame__Output, _doppel_v1_DiskCopySummary__Output>
  StreamMigration: MethodDefinition<_doppel_v1_MigrationFrame, _doppel_v1_MigrationAck, _doppel_v1_MigrationFrame__Output, _doppel_v1_MigrationAck__Output>
  StreamPages: MethodDefinition<_doppel_v1_PageFrame, _doppel_v1_StreamAck, _doppel_v1_PageFrame__Output, _doppel_v1_StreamAck__Output>
  VerifyClone: MethodDefinition<_doppel_v1_VerifyCloneRequest, _doppel_v1_VerifyCloneReply, _doppel_v1_VerifyCloneRequest__Output, _doppel_v1_VerifyCloneReply__Output>
}
