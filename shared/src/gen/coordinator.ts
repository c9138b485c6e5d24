import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AddClusterRequest as _doppel_v1_AddClusterRequest, AddClusterRequest__Output as _doppel_v1_AddClusterRequest__Output } from './doppel/v1/AddClusterRequest.js';
import type { AdoptVMRequest as _doppel_v1_AdoptVMRequest, AdoptVMRequest__Output as _doppel_v1_AdoptVMRequest__Output } from './doppel/v1/AdoptVMRequest.js';
import type { Backup as _doppel_v1_Backup, Backup__Output as _doppel_v1_Backup__Output } from './doppel/v1/Backup.js';
import type { BackupDisk as _doppel_v1_BackupDisk, BackupDisk__Output as _doppel_v1_BackupDisk__Output } from './doppel/v1/BackupDisk.js';
import type { BackupId as _doppel_v1_BackupId, BackupId__Output as _doppel_v1_BackupId__Output } from './doppel/v1/BackupId.js';
import type { BackupJob as _doppel_v1_BackupJob, BackupJob__Output as _doppel_v1_BackupJob__Output } from './doppel/v1/BackupJob.js';
import type { BackupStats as _doppel_v1_BackupStats, BackupStats__Output as _doppel_v1_BackupStats__Output } from './doppel/v1/BackupStats.js';
import type { BackupVMRequest as _doppel_v1_BackupVMRequest, BackupVMRequest__Output as _doppel_v1_BackupVMRequest__Output } from './doppel/v1/BackupVMRequest.js';
import type { BypassBackup as _doppel_v1_BypassBackup, BypassBackup__Output as _doppel_v1_BypassBackup__Output } from './doppel/v1/BypassBackup.js';
import type { BypassBackupVolume as _doppel_v1_BypassBackupVolume, BypassBackupVolume__Output as _doppel_v1_BypassBackupVolume__Output } from './doppel/v1/BypassBackupVolume.js';
import type { BypassVolume as _doppel_v1_BypassVolume, BypassVolume__Output as _doppel_v1_BypassVolume__Output } from './doppel/v1/BypassVolume.js';
import type { Capacity as _doppel_v1_Capacity, Capacity__Output as _doppel_v1_Capacity__Output } from './doppel/v1/Capacity.js';
import type { CatalogRequest as _doppel_v1_CatalogRequest, CatalogRequest__Output as _doppel_v1_CatalogRequest__Output } from './doppel/v1/CatalogRequest.js';
import type { CatalogResponse as _doppel_v1_CatalogResponse, CatalogResponse__Output as _doppel_v1_CatalogResponse__Output } from './doppel/v1/CatalogResponse.js';
import type { CheckSnapshotsRequest as _doppel_v1_CheckSnapshotsRequest, CheckSnapshotsRequest__Output as _doppel_v1_CheckSnapshotsRequest__Output } from './doppel/v1/CheckSnapshotsRequest.js';
import type { ClonePlan as _doppel_v1_ClonePlan, ClonePlan__Output as _doppel_v1_ClonePlan__Output } from './doppel/v1/ClonePlan.js';
import type { CloneStats as _doppel_v1_CloneStats, CloneStats__Output as _doppel_v1_CloneStats__Output } from './doppel/v1/CloneStats.js';
import type { CloneVMRequest as _doppel_v1_CloneVMRequest, CloneVMRequest__Output as _doppel_v1_CloneVMRequest__Output } from './doppel/v1/CloneVMRequest.js';
import type { Cluster as _doppel_v1_Cluster, Cluster__Output as _doppel_v1_Cluster__Output } from './doppel/v1/Cluster.js';
import type { ClusterDatastore as _doppel_v1_ClusterDatastore, ClusterDatastore__Output as _doppel_v1_ClusterDatastore__Output } from './doppel/v1/ClusterDatastore.js';
import type { ClusterHost as _doppel_v1_ClusterHost, ClusterHost__Output as _doppel_v1_ClusterHost__Output } from './doppel/v1/ClusterHost.js';
import type { ClusterNetwork as _doppel_v1_ClusterNetwork, ClusterNetwork__Output as _doppel_v1_ClusterNetwork__Output } from './doppel/v1/ClusterNetwork.js';
import type { ClusterRef as _doppel_v1_ClusterRef, ClusterRef__Output as _doppel_v1_ClusterRef__Output } from './doppel/v1/ClusterRef.js';
import type { CoordinatorClient as _doppel_v1_CoordinatorClient, CoordinatorDefinition as _doppel_v1_CoordinatorDefinition } from './doppel/v1/Coordinator.js';
import type { CorruptChunk as _doppel_v1_CorruptChunk, CorruptChunk__Output as _doppel_v1_CorruptChunk__Output } from './doppel/v1/CorruptChunk.js';
import type { CreateSnapshotRequest as _doppel_v1_CreateSnapshotRequest, CreateSnapshotRequest__Output as _doppel_v1_CreateSnapshotRequest__Output } from './doppel/v1/CreateSnapshotRequest.js';
import type { CreateVMRequest as _doppel_v1_CreateVMRequest, CreateVMRequest__Output as _doppel_v1_CreateVMRequest__Output } from './doppel/v1/CreateVMRequest.js';
import type { DeleteSnapshotResponse as _doppel_v1_DeleteSnapshotResponse, DeleteSnapshotResponse__Output as _doppel_v1_DeleteSnapshotResponse__Output } from './doppel/v1/DeleteSnapshotResponse.js';
import type { DestroyVMResponse as _doppel_v1_DestroyVMResponse, DestroyVMResponse__Output as _doppel_v1_DestroyVMResponse__Output } from './doppel/v1/DestroyVMResponse.js';
import type { Disk as _doppel_v1_Disk, Disk__Output as _doppel_v1_Disk__Output } from './doppel/v1/Disk.js';
import type { Event as _doppel_v1_Event, Event__Output as _doppel_v1_Event__Output } from './doppel/v1/Event.js';
import type { FreezeLevel as _doppel_v1_FreezeLevel, FreezeLevel__Output as _doppel_v1_FreezeLevel__Output } from './doppel/v1/FreezeLevel.js';
import type { Host as _doppel_v1_Host, Host__Output as _doppel_v1_Host__Output } from './doppel/v1/Host.js';
import type { HotCloneStats as _doppel_v1_HotCloneStats, HotCloneStats__Output as _doppel_v1_HotCloneStats__Output } from './doppel/v1/HotCloneStats.js';
import type { Job as _doppel_v1_Job, Job__Output as _doppel_v1_Job__Output } from './doppel/v1/Job.js';
import type { JobRef as _doppel_v1_JobRef, JobRef__Output as _doppel_v1_JobRef__Output } from './doppel/v1/JobRef.js';
import type { ListClustersRequest as _doppel_v1_ListClustersRequest, ListClustersRequest__Output as _doppel_v1_ListClustersRequest__Output } from './doppel/v1/ListClustersRequest.js';
import type { ListClustersResponse as _doppel_v1_ListClustersResponse, ListClustersResponse__Output as _doppel_v1_ListClustersResponse__Output } from './doppel/v1/ListClustersResponse.js';
import type { ListHostsRequest as _doppel_v1_ListHostsRequest, ListHostsRequest__Output as _doppel_v1_ListHostsRequest__Output } from './doppel/v1/ListHostsRequest.js';
import type { ListHostsResponse as _doppel_v1_ListHostsResponse, ListHostsResponse__Output as _doppel_v1_ListHostsResponse__Output } from './doppel/v1/ListHostsResponse.js';
import type { ListJobsRequest as _doppel_v1_ListJobsRequest, ListJobsRequest__Output as _doppel_v1_ListJobsRequest__Output } from './doppel/v1/ListJobsRequest.js';
import type { ListJobsResponse as _doppel_v1_ListJobsResponse, ListJobsResponse__Output as _doppel_v1_ListJobsResponse__Output } from './doppel/v1/ListJobsResponse.js';
import type { ListSnapshotsRequest as _doppel_v1_ListSnapshotsRequest, ListSnapshotsRequest__Output as _doppel_v1_ListSnapshotsRequest__Output } from './doppel/v1/ListSnapshotsRequest.js';
import type { ListVMsRequest as _doppel_v1_ListVMsRequest, ListVMsRequest__Output as _doppel_v1_ListVMsRequest__Output } from './doppel/v1/ListVMsRequest.js';
import type { ListVMsResponse as _doppel_v1_ListVMsResponse, ListVMsResponse__Output as _doppel_v1_ListVMsResponse__Output } from './doppel/v1/ListVMsResponse.js';
import type { MetadataSnapshot as _doppel_v1_MetadataSnapshot, MetadataSnapshot__Output as _doppel_v1_MetadataSnapshot__Output } from './doppel/v1/MetadataSnapshot.js';
import type { PlanChange as _doppel_v1_PlanChange, PlanChange__Output as _doppel_v1_PlanChange__Output } from './doppel/v1/PlanChange.js';
import type { RemoveClusterResponse as _doppel_v1_RemoveClusterResponse, RemoveClusterResponse__Output as _doppel_v1_RemoveClusterResponse__Output } from './doppel/v1/RemoveClusterResponse.js';
import type { ResourceUsage as _doppel_v1_ResourceUsage, ResourceUsage__Output as _doppel_v1_ResourceUsage__Output } from './doppel/v1/ResourceUsage.js';
import type { RestoreBackupRequest as _doppel_v1_RestoreBackupRequest, RestoreBackupRequest__Output as _doppel_v1_RestoreBackupRequest__Output } from './doppel/v1/RestoreBackupRequest.js';
import type { RestoreJob as _doppel_v1_RestoreJob, RestoreJob__Output as _doppel_v1_RestoreJob__Output } from './doppel/v1/RestoreJob.js';
import type { RestorePlan as _doppel_v1_RestorePlan, RestorePlan__Output as _doppel_v1_RestorePlan__Output } from './doppel/v1/RestorePlan.js';
import type { RevertSnapshotResponse as _doppel_v1_RevertSnapshotResponse, RevertSnapshotResponse__Output as _doppel_v1_RevertSnapshotResponse__Output } from './doppel/v1/RevertSnapshotResponse.js';
import type { SnapshotCheckReport as _doppel_v1_SnapshotCheckReport, SnapshotCheckReport__Output as _doppel_v1_SnapshotCheckReport__Output } from './doppel/v1/SnapshotCheckReport.js';
import type { SnapshotDisk as _doppel_v1_SnapshotDisk, SnapshotDisk__Output as _doppel_v1_SnapshotDisk__Output } from './doppel/v1/SnapshotDisk.js';
import type { SnapshotList as _doppel_v1_SnapshotList, SnapshotList__Output as _doppel_v1_SnapshotList__Output } from './doppel/v1/SnapshotList.js';
import type { SnapshotPair as _doppel_v1_SnapshotPair, SnapshotPair__Output as _doppel_v1_SnapshotPair__Output } from './doppel/v1/SnapshotPair.js';
import type { SnapshotRef as _doppel_v1_SnapshotRef, SnapshotRef__Output as _doppel_v1_SnapshotRef__Output } from './doppel/v1/SnapshotRef.js';
import type { StorageSnapshot as _doppel_v1_StorageSnapshot, StorageSnapshot__Output as _doppel_v1_StorageSnapshot__Output } from './doppel/v1/StorageSnapshot.js';
import type { VM as _doppel_v1_VM, VM__Output as _doppel_v1_VM__Output } from './doppel/v1/VM.js';
import type { VMRef as _doppel_v1_VMRef, VMRef__Output as _doppel_v1_VMRef__Output } from './doppel/v1/VMRef.js';
import type { VMStorage as _doppel_v1_VMStorage, VMStorage__Output as _doppel_v1_VMStorage__Output } from './doppel/v1/VMStorage.js';
import type { VMStorageLayer as _doppel_v1_VMStorageLayer, VMStorageLayer__Output as _doppel_v1_VMStorageLayer__Output } from './doppel/v1/VMStorageLayer.js';
import type { VerifyReport as _doppel_v1_VerifyReport, VerifyReport__Output as _doppel_v1_VerifyReport__Output } from './doppel/v1/VerifyReport.js';
import type { WatchEventsRequest as _doppel_v1_WatchEventsRequest, WatchEventsRequest__Output as _doppel_v1_WatchEventsRequest__Output } from './doppel/v1/WatchEventsRequest.js';
import type { Workload as _doppel_v1_Workload, Workload__Output as _doppel_v1_Workload__Output } from './doppel/v1/Workload.js';

type SubtypeConstructor<Constructor extends new (...args: never) => unknown, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  doppel: {
    v1: {
      AddClusterRequest: MessageTypeDefinition<_doppel_v1_AddClusterRequest, _doppel_v1_AddClusterRequest__Output>
      AdoptVMRequest: MessageTypeDefinition<_doppel_v1_AdoptVMRequest, _doppel_v1_AdoptVMRequest__Output>
      Backup: MessageTypeDefinition<_doppel_v1_Backup, _doppel_v1_Backup__Output>
      BackupDisk: MessageTypeDefinition<_doppel_v1_BackupDisk, _doppel_v1_BackupDisk__Output>
      BackupId: MessageTypeDefinition<_doppel_v1_BackupId, _doppel_v1_BackupId__Output>
      BackupJob: MessageTypeDefinition<_doppel_v1_BackupJob, _doppel_v1_BackupJob__Output>
      BackupStats: MessageTypeDefinition<_doppel_v1_BackupStats, _doppel_v1_BackupStats__Output>
      BackupVMRequest: MessageTypeDefinition<_doppel_v1_BackupVMRequest, _doppel_v1_BackupVMRequest__Output>
      BypassBackup: MessageTypeDefinition<_doppel_v1_BypassBackup, _doppel_v1_BypassBackup__Output>
      BypassBackupVolume: MessageTypeDefinition<_doppel_v1_BypassBackupVolume, _doppel_v1_BypassBackupVolume__Output>
      BypassVolume: MessageTypeDefinition<_doppel_v1_BypassVolume, _doppel_v1_BypassVolume__Output>
      Capacity: MessageTypeDefinition<_doppel_v1_Capacity, _doppel_v1_Capacity__Output>
      CatalogRequest: MessageTypeDefinition<_doppel_v1_CatalogRequest, _doppel_v1_CatalogRequest__Output>
      CatalogResponse: MessageTypeDefinition<_doppel_v1_CatalogResponse, _doppel_v1_CatalogResponse__Output>
      CheckSnapshotsRequest: MessageTypeDefinition<_doppel_v1_CheckSnapshotsRequest, _doppel_v1_CheckSnapshotsRequest__Output>
      ClonePlan: MessageTypeDefinition<_doppel_v1_ClonePlan, _doppel_v1_ClonePlan__Output>
      CloneStats: MessageTypeDefinition<_doppel_v1_CloneStats, _doppel_v1_CloneStats__Output>
      CloneVMRequest: MessageTypeDefinition<_doppel_v1_CloneVMRequest, _doppel_v1_CloneVMRequest__Output>
      Cluster: MessageTypeDefinition<_doppel_v1_Cluster, _doppel_v1_Cluster__Output>
      ClusterDatastore: MessageTypeDefinition<_doppel_v1_ClusterDatastore, _doppel_v1_ClusterDatastore__Output>
      ClusterHost: MessageTypeDefinition<_doppel_v1_ClusterHost, _doppel_v1_ClusterHost__Output>
      ClusterNetwork: MessageTypeDefinition<_doppel_v1_ClusterNetwork, _doppel_v1_ClusterNetwork__Output>
      ClusterRef: MessageTypeDefinition<_doppel_v1_ClusterRef, _doppel_v1_ClusterRef__Output>
      /**
       * The coordinator's API for schedulers and the CLI. The same calls are served as
       * JSON over HTTP (see README, "API").
       */
      Coordinator: SubtypeConstructor<typeof grpc.Client, _doppel_v1_CoordinatorClient> & { service: _doppel_v1_CoordinatorDefinition }
      CorruptChunk: MessageTypeDefinition<_doppel_v1_CorruptChunk, _doppel_v1_CorruptChunk__Output>
      CreateSnapshotRequest: MessageTypeDefinition<_doppel_v1_CreateSnapshotRequest, _doppel_v1_CreateSnapshotRequest__Output>
      CreateVMRequest: MessageTypeDefinition<_doppel_v1_CreateVMRequest, _doppel_v1_CreateVMRequest__Output>
      DeleteSnapshotResponse: MessageTypeDefinition<_doppel_v1_DeleteSnapshotResponse, _doppel_v1_DeleteSnapshotResponse__Output>
      DestroyVMResponse: MessageTypeDefinition<_doppel_v1_DestroyVMResponse, _doppel_v1_DestroyVMResponse__Output>
      Disk: MessageTypeDefinition<_doppel_v1_Disk, _doppel_v1_Disk__Output>
      Event: MessageTypeDefinition<_doppel_v1_Event, _doppel_v1_Event__Output>
      FreezeLevel: MessageTypeDefinition<_doppel_v1_FreezeLevel, _doppel_v1_FreezeLevel__Output>
      Host: MessageTypeDefinition<_doppel_v1_Host, _doppel_v1_Host__Output>
      HotCloneStats: MessageTypeDefinition<_doppel_v1_HotCloneStats, _doppel_v1_HotCloneStats__Output>
      Job: MessageTypeDefinition<_doppel_v1_Job, _doppel_v1_Job__Output>
      JobRef: MessageTypeDefinition<_doppel_v1_JobRef, _doppel_v1_JobRef__Output>
      ListClustersRequest: MessageTypeDefinition<_doppel_v1_ListClustersRequest, _doppel_v1_ListClustersRequest__Output>
      ListClustersResponse: MessageTypeDefinition<_doppel_v1_ListClustersResponse, _doppel_v1_ListClustersResponse__Output>
      ListHostsRequest: MessageTypeDefinition<_doppel_v1_ListHostsRequest, _doppel_v1_ListHostsRequest__Output>
      ListHostsResponse: MessageTypeDefinition<_doppel_v1_ListHostsResponse, _doppel_v1_ListHostsResponse__Output>
      ListJobsRequest: MessageTypeDefinition<_doppel_v1_ListJobsRequest, _doppel_v1_ListJobsRequest__Output>
      ListJobsResponse: MessageTypeDefinition<_doppel_v1_ListJobsResponse, _doppel_v1_ListJobsResponse__Output>
      ListSnapshotsRequest: MessageTypeDefinition<_doppel_v1_ListSnapshotsRequest, _doppel_v1_ListSnapshotsRequest__Output>
      ListVMsRequest: MessageTypeDefinition<_doppel_v1_ListVMsRequest, _doppel_v1_ListVMsRequest__Output>
      ListVMsResponse: MessageTypeDefinition<_doppel_v1_ListVMsResponse, _doppel_v1_ListVMsResponse__Output>
      MetadataSnapshot: MessageTypeDefinition<_doppel_v1_MetadataSnapshot, _doppel_v1_MetadataSnapshot__Output>
      PlanChange: MessageTypeDefinition<_doppel_v1_PlanChange, _doppel_v1_PlanChange__Output>
      RemoveClusterResponse: MessageTypeDefinition<_doppel_v1_RemoveClusterResponse, _doppel_v1_RemoveClusterResponse__Output>
      ResourceUsage: MessageTypeDefinition<_doppel_v1_ResourceUsage, _doppel_v1_ResourceUsage__Output>
      RestoreBackupRequest: MessageTypeDefinition<_doppel_v1_RestoreBackupRequest, _doppel_v1_RestoreBackupRequest__Output>
      RestoreJob: MessageTypeDefinition<_doppel_v1_RestoreJob, _doppel_v1_RestoreJob__Output>
      RestorePlan: MessageTypeDefinition<_doppel_v1_RestorePlan, _doppel_v1_RestorePlan__Output>
      RevertSnapshotResponse: MessageTypeDefinition<_doppel_v1_RevertSnapshotResponse, _doppel_v1_RevertSnapshotResponse__Output>
      SnapshotCheckReport: MessageTypeDefinition<_doppel_v1_SnapshotCheckReport, _doppel_v1_SnapshotCheckReport__Output>
      SnapshotDisk: MessageTypeDefinition<_doppel_v1_SnapshotDisk, _doppel_v1_SnapshotDisk__Output>
      SnapshotList: MessageTypeDefinition<_doppel_v1_SnapshotList, _doppel_v1_SnapshotList__Output>
      SnapshotPair: MessageTypeDefinition<_doppel_v1_SnapshotPair, _doppel_v1_SnapshotPair__Output>
      SnapshotRef: MessageTypeDefinition<_doppel_v1_SnapshotRef, _doppel_v1_SnapshotRef__Output>
      StorageSnapshot: MessageTypeDefinition<_doppel_v1_StorageSnapshot, _doppel_v1_StorageSnapshot__Output>
      VM: MessageTypeDefinition<_doppel_v1_VM, _doppel_v1_VM__Output>
      VMRef: MessageTypeDefinition<_doppel_v1_VMRef, _doppel_v1_VMRef__Output>
      VMStorage: MessageTypeDefinition<_doppel_v1_VMStorage, _doppel_v1_VMStorage__Output>
      VMStorageLayer: MessageTypeDefinition<_doppel_v1_VMStorageLayer, _doppel_v1_VMStorageLayer__Output>
      VerifyReport: MessageTypeDefinition<_doppel_v1_VerifyReport, _doppel_v1_VerifyReport__Output>
      WatchEventsRequest: MessageTypeDefinition<_doppel_v1_WatchEventsRequest, _doppel_v1_WatchEventsRequest__Output>
      Workload: MessageTypeDefinition<_doppel_v1_Workload, _doppel_v1_Workload__Output>
    }
  }
}

