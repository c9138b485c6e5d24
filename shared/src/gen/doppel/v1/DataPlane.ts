// Original file: proto/doppel/v1/dataplane.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { PageFrame as _doppel_v1_PageFrame, PageFrame__Output as _doppel_v1_PageFrame__Output } from '../../doppel/v1/PageFrame.js';
import type { StreamSummary as _doppel_v1_StreamSummary, StreamSummary__Output as _doppel_v1_StreamSummary__Output } from '../../doppel/v1/StreamSummary.js';
import type { VerifyCloneReply as _doppel_v1_VerifyCloneReply, VerifyCloneReply__Output as _doppel_v1_VerifyCloneReply__Output } from '../../doppel/v1/VerifyCloneReply.js';
import type { VerifyCloneRequest as _doppel_v1_VerifyCloneRequest, VerifyCloneRequest__Output as _doppel_v1_VerifyCloneRequest__Output } from '../../doppel/v1/VerifyCloneRequest.js';

/**
 * The agent-to-agent data plane. One client stream carries one live clone (or a
 * bandwidth probe) from the source agent to the target agent.
 */
export interface DataPlaneClient extends grpc.Client {
  /**
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target answers once, after the stream ends, with
   * what it applied. An error status means the clone was discarded.
   */
  StreamPages(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  StreamPages(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  StreamPages(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  StreamPages(callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  /**
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target answers once, after the stream ends, with
   * what it applied. An error status means the clone was discarded.
   */
  streamPages(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  streamPages(metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  streamPages(options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  streamPages(callback: grpc.requestCallback<_doppel_v1_StreamSummary__Output>): grpc.ClientWritableStream<_doppel_v1_PageFrame>;
  
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
   * The source streams the pre-copy rounds, the final dirty pages and the
   * vCPU/device state. The target answers once, after the stream ends, with
   * what it applied. An error status means the clone was discarded.
   */
  StreamPages: grpc.handleClientStreamingCall<_doppel_v1_PageFrame__Output, _doppel_v1_StreamSummary>;
  
  /**
   * Hashes a clone the target received, for verification outside the downtime window.
   */
  VerifyClone: grpc.handleUnaryCall<_doppel_v1_VerifyCloneRequest__Output, _doppel_v1_VerifyCloneReply>;
  
}

export interface DataPlaneDefinition extends grpc.ServiceDefinition {
  StreamPages: MethodDefinition<_doppel_v1_PageFrame, _doppel_v1_StreamSummary, _doppel_v1_PageFrame__Output, _doppel_v1_StreamSummary__Output>
  VerifyClone: MethodDefinition<_doppel_v1_VerifyCloneRequest, _doppel_v1_VerifyCloneReply, _doppel_v1_VerifyCloneRequest__Output, _doppel_v1_VerifyCloneReply__Output>
}
