import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { DataPlaneClient as _doppel_v1_DataPlaneClient, DataPlaneDefinition as _doppel_v1_DataPlaneDefinition } from './doppel/v1/DataPlane.js';
import type { DiskBlocks as _doppel_v1_DiskBlocks, DiskBlocks__Output as _doppel_v1_DiskBlocks__Output } from './doppel/v1/DiskBlocks.js';
import type { DiskChanges as _doppel_v1_DiskChanges, DiskChanges__Output as _doppel_v1_DiskChanges__Output } from './doppel/v1/DiskChanges.js';
import type { DiskCopyOpen as _doppel_v1_DiskCopyOpen, DiskCopyOpen__Output as _doppel_v1_DiskCopyOpen__Output } from './doppel/v1/DiskCopyOpen.js';
import type { DiskCopySummary as _doppel_v1_DiskCopySummary, DiskCopySummary__Output as _doppel_v1_DiskCopySummary__Output } from './doppel/v1/DiskCopySummary.js';
import type { DiskFrame as _doppel_v1_DiskFrame, DiskFrame__Output as _doppel_v1_DiskFrame__Output } from './doppel/v1/DiskFrame.js';
import type { DiskShape as _doppel_v1_DiskShape, DiskShape__Output as _doppel_v1_DiskShape__Output } from './doppel/v1/DiskShape.js';
import type { LayerChain as _doppel_v1_LayerChain, LayerChain__Output as _doppel_v1_LayerChain__Output } from './doppel/v1/LayerChain.js';
import type { MachineState as _doppel_v1_MachineState, MachineState__Output as _doppel_v1_MachineState__Output } from './doppel/v1/MachineState.js';
import type { MigrationAck as _doppel_v1_MigrationAck, MigrationAck__Output as _doppel_v1_MigrationAck__Output } from './doppel/v1/MigrationAck.js';
import type { MigrationFrame as _doppel_v1_MigrationFrame, MigrationFrame__Output as _doppel_v1_MigrationFrame__Output } from './doppel/v1/MigrationFrame.js';
import type { MigrationOpen as _doppel_v1_MigrationOpen, MigrationOpen__Output as _doppel_v1_MigrationOpen__Output } from './doppel/v1/MigrationOpen.js';
import type { MigrationSummary as _doppel_v1_MigrationSummary, MigrationSummary__Output as _doppel_v1_MigrationSummary__Output } from './doppel/v1/MigrationSummary.js';
import type { PageBatch as _doppel_v1_PageBatch, PageBatch__Output as _doppel_v1_PageBatch__Output } from './doppel/v1/PageBatch.js';
import type { PageFrame as _doppel_v1_PageFrame, PageFrame__Output as _doppel_v1_PageFrame__Output } from './doppel/v1/PageFrame.js';
import type { RoundEnd as _doppel_v1_RoundEnd, RoundEnd__Output as _doppel_v1_RoundEnd__Output } from './doppel/v1/RoundEnd.js';
import type { StreamAck as _doppel_v1_StreamAck, StreamAck__Output as _doppel_v1_StreamAck__Output } from './doppel/v1/StreamAck.js';
import type { StreamOpen as _doppel_v1_StreamOpen, StreamOpen__Output as _doppel_v1_StreamOpen__Output } from './doppel/v1/StreamOpen.js';
import type { StreamSummary as _doppel_v1_StreamSummary, StreamSummary__Output as _doppel_v1_StreamSummary__Output } from './doppel/v1/StreamSummary.js';
import type { VerifyCloneReply as _doppel_v1_VerifyCloneReply, VerifyCloneReply__Output as _doppel_v1_VerifyCloneReply__Output } from './doppel/v1/VerifyCloneReply.js';
import type { VerifyCloneRequest as _doppel_v1_VerifyCloneRequest, VerifyCloneRequest__Output as _doppel_v1_VerifyCloneRequest__Output } from './doppel/v1/VerifyCloneRequest.js';

type SubtypeConstructor<Constructor extends new (...args: never) => unknown, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  doppel: {
    v1: {
      /**
       * The agent-to-agent data plane. One client stream carries one live clone (or a
       * bandwidth probe) from the source agent to the target agent.
       */
      DataPlane: SubtypeConstructor<typeof grpc.Client, _doppel_v1_DataPlaneClient> & { service: _doppel_v1_DataPlaneDefinition }
      DiskBlocks: MessageTypeDefinition<_doppel_v1_DiskBlocks, _doppel_v1_DiskBlocks__Output>
      DiskChanges: MessageTypeDefinition<_doppel_v1_DiskChanges, _doppel_v1_DiskChanges__Output>
      DiskCopyOpen: MessageTypeDefinition<_doppel_v1_DiskCopyOpen, _doppel_v1_DiskCopyOpen__Output>
      DiskCopySummary: MessageTypeDefinition<_doppel_v1_DiskCopySummary, _doppel_v1_DiskCopySummary__Output>
      DiskFrame: MessageTypeDefinition<_doppel_v1_DiskFrame, _doppel_v1_DiskFrame__Output>
      DiskShape: MessageTypeDefinition<_doppel_v1_DiskShape, _doppel_v1_DiskShape__Output>
      LayerChain: MessageTypeDefinition<_doppel_v1_LayerChain, _doppel_v1_LayerChain__Output>
      MachineState: MessageTypeDefinition<_doppel_v1_MachineState, _doppel_v1_MachineState__Output>
      MigrationAck: MessageTypeDefinition<_doppel_v1_MigrationAck, _doppel_v1_MigrationAck__Output>
      MigrationFrame: MessageTypeDefinition<_doppel_v1_MigrationFrame, _doppel_v1_MigrationFrame__Output>
      MigrationOpen: MessageTypeDefinition<_doppel_v1_MigrationOpen, _doppel_v1_MigrationOpen__Output>
      MigrationSummary: MessageTypeDefinition<_doppel_v1_MigrationSummary, _doppel_v1_MigrationSummary__Output>
      PageBatch: MessageTypeDefinition<_doppel_v1_PageBatch, _doppel_v1_PageBatch__Output>
      PageFrame: MessageTypeDefinition<_doppel_v1_PageFrame, _doppel_v1_PageFrame__Output>
      RoundEnd: MessageTypeDefinition<_doppel_v1_RoundEnd, _doppel_v1_RoundEnd__Output>
      StreamAck: MessageTypeDefinition<_doppel_v1_StreamAck, _doppel_v1_StreamAck__Output>
      StreamOpen: MessageTypeDefinition<_doppel_v1_StreamOpen, _doppel_v1_StreamOpen__Output>
      StreamSummary: MessageTypeDefinition<_doppel_v1_StreamSummary, _doppel_v1_StreamSummary__Output>
      VerifyCloneReply: MessageTypeDefinition<_doppel_v1_VerifyCloneReply, _doppel_v1_VerifyCloneReply__Output>
      VerifyCloneRequest: MessageTypeDefinition<_doppel_v1_VerifyCloneRequest, _doppel_v1_VerifyCloneRequest__Output>
    }
  }
}

