// Original file: proto/doppel/v1/coordinator.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AddClusterRequest as _doppel_v1_AddClusterRequest, AddClusterRequest__Output as _doppel_v1_AddClusterRequest__Output } from '../../doppel/v1/AddClusterRequest.js';
import type { AdoptVMRequest as _doppel_v1_AdoptVMRequest, AdoptVMRequest__Output as _doppel_v1_AdoptVMRequest__Output } from '../../doppel/v1/AdoptVMRequest.js';
import type { Backup as _doppel_v1_Backup, Backup__Output as _doppel_v1_Backup__Output } from '../../doppel/v1/Backup.js';
import type { BackupId as _doppel_v1_BackupId, BackupId__Output as _doppel_v1_BackupId__Output } from '../../doppel/v1/BackupId.js';
import type { BackupVMRequest as _doppel_v1_BackupVMRequest, BackupVMRequest__Output as _doppel_v1_BackupVMRequest__Output } from '../../doppel/v1/BackupVMRequest.js';
import type { CatalogRequest as _doppel_v1_CatalogRequest, CatalogRequest__Output as _doppel_v1_CatalogRequest__Output } from '../../doppel/v1/CatalogRequest.js';
import type { CatalogResponse as _doppel_v1_CatalogResponse, CatalogResponse__Output as _doppel_v1_CatalogResponse__Output } from '../../doppel/v1/CatalogResponse.js';
import type { CheckSnapshotsRequest as _doppel_v1_CheckSnapshotsRequest, CheckSnapshotsRequest__Output as _doppel_v1_CheckSnapshotsRequest__Output } from '../../doppel/v1/CheckSnapshotsRequest.js';
import type { CloneVMRequest as _doppel_v1_CloneVMRequest, CloneVMRequest__Output as _doppel_v1_CloneVMRequest__Output } from '../../doppel/v1/CloneVMRequest.js';
import type { Cluster as _doppel_v1_Cluster, Cluster__Output as _doppel_v1_Cluster__Output } from '../../doppel/v1/Cluster.js';
import type { ClusterRef as _doppel_v1_ClusterRef, ClusterRef__Output as _doppel_v1_ClusterRef__Output } from '../../doppel/v1/ClusterRef.js';
import type { CreateSnapshotRequest as _doppel_v1_CreateSnapshotRequest, CreateSnapshotRequest__Output as _doppel_v1_CreateSnapshotRequest__Output } from '../../doppel/v1/CreateSnapshotRequest.js';
import type { CreateVMRequest as _doppel_v1_CreateVMRequest, CreateVMRequest__Output as _doppel_v1_CreateVMRequest__Output } from '../../doppel/v1/CreateVMRequest.js';
import type { DeleteSnapshotResponse as _doppel_v1_DeleteSnapshotResponse, DeleteSnapshotResponse__Output as _doppel_v1_DeleteSnapshotResponse__Output } from '../../doppel/v1/DeleteSnapshotResponse.js';
import type { DestroyVMResponse as _doppel_v1_DestroyVMResponse, DestroyVMResponse__Output as _doppel_v1_DestroyVMResponse__Output } from '../../doppel/v1/DestroyVMResponse.js';
import type { Event as _doppel_v1_Event, Event__Output as _doppel_v1_Event__Output } from '../../doppel/v1/Event.js';
import type { Job as _doppel_v1_Job, Job__Output as _doppel_v1_Job__Output } from '../../doppel/v1/Job.js';
import type { JobRef as _doppel_v1_JobRef, JobRef__Output as _doppel_v1_JobRef__Output } from '../../doppel/v1/JobRef.js';
import type { ListClustersRequest as _doppel_v1_ListClustersRequest, ListClustersRequest__Output as _doppel_v1_ListClustersRequest__Output } from '../../doppel/v1/ListClustersRequest.js';
import type { ListClustersResponse as _doppel_v1_ListClustersResponse, ListClustersResponse__Output as _doppel_v1_ListClustersResponse__Output } from '../../doppel/v1/ListClustersResponse.js';
import type { ListHostsRequest as _doppel_v1_ListHostsRequest, ListHostsRequest__Output as _doppel_v1_ListHostsRequest__Output } from '../../doppel/v1/ListHostsRequest.js';
import type { ListHostsResponse as _doppel_v1_ListHostsResponse, ListHostsResponse__Output as _doppel_v1_ListHostsResponse__Output } from '../../doppel/v1/ListHostsResponse.js';
import type { ListJobsRequest as _doppel_v1_ListJobsRequest, ListJobsRequest__Output as _doppel_v1_ListJobsRequest__Output } from '../../doppel/v1/ListJobsRequest.js';
import type { ListJobsResponse as _doppel_v1_ListJobsResponse, ListJobsResponse__Output as _doppel_v1_ListJobsResponse__Output } from '../../doppel/v1/ListJobsResponse.js';
import type { ListSnapshotsRequest as _doppel_v1_ListSnapshotsRequest, ListSnapshotsRequest__Output as _doppel_v1_ListSnapshotsRequest__Output } from '../../doppel/v1/ListSnapshotsRequest.js';
import type { ListVMsRequest as _doppel_v1_ListVMsRequest, ListVMsRequest__Output as _doppel_v1_ListVMsRequest__Output } from '../../doppel/v1/ListVMsRequest.js';
import type { ListVMsResponse as _doppel_v1_ListVMsResponse, ListVMsResponse__Output as _doppel_v1_ListVMsResponse__Output } from '../../doppel/v1/ListVMsResponse.js';
import type { RemoveClusterResponse as _doppel_v1_RemoveClusterResponse, RemoveClusterResponse__Output as _doppel_v1_RemoveClusterResponse__Output } from '../../doppel/v1/RemoveClusterResponse.js';
import type { RestoreBackupRequest as _doppel_v1_RestoreBackupRequest, RestoreBackupRequest__Output as _doppel_v1_RestoreBackupRequest__Output } from '../../doppel/v1/RestoreBackupRequest.js';
import type { RestorePlan as _doppel_v1_RestorePlan, RestorePlan__Output as _doppel_v1_RestorePlan__Output } from '../../doppel/v1/RestorePlan.js';
import type { RevertSnapshotResponse as _doppel_v1_RevertSnapshotResponse, RevertSnapshotResponse__Output as _doppel_v1_RevertSnapshotResponse__Output } from '../../doppel/v1/RevertSnapshotResponse.js';
import type { SnapshotCheckReport as _doppel_v1_SnapshotCheckReport, SnapshotCheckReport__Output as _doppel_v1_SnapshotCheckReport__Output } from '../../doppel/v1/SnapshotCheckReport.js';
import type { SnapshotList as _doppel_v1_SnapshotList, SnapshotList__Output as _doppel_v1_SnapshotList__Output } from '../../doppel/v1/SnapshotList.js';
import type { SnapshotPair as _doppel_v1_SnapshotPair, SnapshotPair__Output as _doppel_v1_SnapshotPair__Output } from '../../doppel/v1/SnapshotPair.js';
import type { SnapshotRef as _doppel_v1_SnapshotRef, SnapshotRef__Output as _doppel_v1_SnapshotRef__Output } from '../../doppel/v1/SnapshotRef.js';
import type { VM as _doppel_v1_VM, VM__Output as _doppel_v1_VM__Output } from '../../doppel/v1/VM.js';
import type { VMRef as _doppel_v1_VMRef, VMRef__Output as _doppel_v1_VMRef__Output } from '../../doppel/v1/VMRef.js';
import type { VMStorage as _doppel_v1_VMStorage, VMStorage__Output as _doppel_v1_VMStorage__Output } from '../../doppel/v1/VMStorage.js';
import type { VerifyReport as _doppel_v1_VerifyReport, VerifyReport__Output as _doppel_v1_VerifyReport__Output } from '../../doppel/v1/VerifyReport.js';
import type { WatchEventsRequest as _doppel_v1_WatchEventsRequest, WatchEventsRequest__Output as _doppel_v1_WatchEventsRequest__Output } from '../../doppel/v1/WatchEventsRequest.js';

/**
 * The coordinator's API for schedulers and the CLI. The same calls are served as
 * JSON over HTTP (see README, "API").
 */
export interface CoordinatorClient extends grpc.Client {
  /**
   * Clusters (seed 003): each agent belongs to one (--cluster). A registered cluster's networks,
   * datastores, CPU models and memory limit are what VMs are checked against and restores planned for.
   */
  AddCluster(argument: _doppel_v1_AddClusterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  AddCluster(argument: _doppel_v1_AddClusterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  AddCluster(argument: _doppel_v1_AddClusterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  AddCluster(argument: _doppel_v1_AddClusterRequest, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  /**
   * Clusters (seed 003): each agent belongs to one (--cluster). A registered cluster's networks,
   * datastores, CPU models and memory limit are what VMs are checked against and restores planned for.
   */
  addCluster(argument: _doppel_v1_AddClusterRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  addCluster(argument: _doppel_v1_AddClusterRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  addCluster(argument: _doppel_v1_AddClusterRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  addCluster(argument: _doppel_v1_AddClusterRequest, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  
  /**
   * qemu driver: takes a QEMU started outside doppel under the agent's care, by its QMP socket on that host. Its
   * disks stay where they are; doppel never restarts it (it does not know its command line).
   */
  AdoptVM(argument: _doppel_v1_AdoptVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  AdoptVM(argument: _doppel_v1_AdoptVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  AdoptVM(argument: _doppel_v1_AdoptVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  AdoptVM(argument: _doppel_v1_AdoptVMRequest, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  /**
   * qemu driver: takes a QEMU started outside doppel under the agent's care, by its QMP socket on that host. Its
   * disks stay where they are; doppel never restarts it (it does not know its command line).
   */
  adoptVm(argument: _doppel_v1_AdoptVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  adoptVm(argument: _doppel_v1_AdoptVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  adoptVm(argument: _doppel_v1_AdoptVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  adoptVm(argument: _doppel_v1_AdoptVMRequest, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  
  /**
   * Backs a VM up: through a live clone on a second host (default), or directly from the VM.
   */
  BackupVM(argument: _doppel_v1_BackupVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  BackupVM(argument: _doppel_v1_BackupVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  BackupVM(argument: _doppel_v1_BackupVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  BackupVM(argument: _doppel_v1_BackupVMRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  /**
   * Backs a VM up: through a live clone on a second host (default), or directly from the VM.
   */
  backupVm(argument: _doppel_v1_BackupVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  backupVm(argument: _doppel_v1_BackupVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  backupVm(argument: _doppel_v1_BackupVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  backupVm(argument: _doppel_v1_BackupVMRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  
  /**
   * Cancels a running clone or backup job; the source VM keeps running and the half-made clone goes.
   */
  CancelJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CancelJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CancelJob(argument: _doppel_v1_JobRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CancelJob(argument: _doppel_v1_JobRef, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  /**
   * Cancels a running clone or backup job; the source VM keeps running and the half-made clone goes.
   */
  cancelJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cancelJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cancelJob(argument: _doppel_v1_JobRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cancelJob(argument: _doppel_v1_JobRef, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  
  /**
   * Finds storage snapshots without metadata and metadata snapshots without storage.
   */
  CheckSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  CheckSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  CheckSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  CheckSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  /**
   * Finds storage snapshots without metadata and metadata snapshots without storage.
   */
  checkSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  checkSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  checkSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  checkSnapshots(argument: _doppel_v1_CheckSnapshotsRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotCheckReport__Output>): grpc.ClientUnaryCall;
  
  CloneVM(argument: _doppel_v1_CloneVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CloneVM(argument: _doppel_v1_CloneVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CloneVM(argument: _doppel_v1_CloneVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  CloneVM(argument: _doppel_v1_CloneVMRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cloneVm(argument: _doppel_v1_CloneVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cloneVm(argument: _doppel_v1_CloneVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cloneVm(argument: _doppel_v1_CloneVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  cloneVm(argument: _doppel_v1_CloneVMRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  
  /**
   * Snapshot pairs (seed 002): a storage snapshot of every disk on the VM's host, and a metadata
   * snapshot (configuration, execution state, the host's resource usage for the VM) in NATS KV,
   * with the same timestamp. storage_only: a new storage snapshot linked to the VM's latest
   * metadata snapshot, which stays unchanged.
   */
  CreateSnapshot(argument: _doppel_v1_CreateSnapshotRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  CreateSnapshot(argument: _doppel_v1_CreateSnapshotRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  CreateSnapshot(argument: _doppel_v1_CreateSnapshotRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  CreateSnapshot(argument: _doppel_v1_CreateSnapshotRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  /**
   * Snapshot pairs (seed 002): a storage snapshot of every disk on the VM's host, and a metadata
   * snapshot (configuration, execution state, the host's resource usage for the VM) in NATS KV,
   * with the same timestamp. storage_only: a new storage snapshot linked to the VM's latest
   * metadata snapshot, which stays unchanged.
   */
  createSnapshot(argument: _doppel_v1_CreateSnapshotRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  createSnapshot(argument: _doppel_v1_CreateSnapshotRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  createSnapshot(argument: _doppel_v1_CreateSnapshotRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  createSnapshot(argument: _doppel_v1_CreateSnapshotRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotPair__Output>): grpc.ClientUnaryCall;
  
  CreateVM(argument: _doppel_v1_CreateVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  CreateVM(argument: _doppel_v1_CreateVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  CreateVM(argument: _doppel_v1_CreateVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  CreateVM(argument: _doppel_v1_CreateVMRequest, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  createVm(argument: _doppel_v1_CreateVMRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  createVm(argument: _doppel_v1_CreateVMRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  createVm(argument: _doppel_v1_CreateVMRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  createVm(argument: _doppel_v1_CreateVMRequest, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  
  /**
   * Deletes a storage snapshot; the rest of the copy-on-write chain stays readable. The metadata
   * snapshot goes with the last storage snapshot linked to it.
   */
  DeleteSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  DeleteSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  DeleteSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  DeleteSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Deletes a storage snapshot; the rest of the copy-on-write chain stays readable. The metadata
   * snapshot goes with the last storage snapshot linked to it.
   */
  deleteSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  deleteSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  deleteSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  deleteSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_DeleteSnapshotResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Stops and removes a VM. Refused while a job runs on it.
   */
  DestroyVM(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  DestroyVM(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  DestroyVM(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  DestroyVM(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Stops and removes a VM. Refused while a job runs on it.
   */
  destroyVm(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  destroyVm(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  destroyVm(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  destroyVm(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_DestroyVMResponse__Output>): grpc.ClientUnaryCall;
  
  GetBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  GetBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  GetBackup(argument: _doppel_v1_BackupId, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  GetBackup(argument: _doppel_v1_BackupId, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  getBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  getBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  getBackup(argument: _doppel_v1_BackupId, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  getBackup(argument: _doppel_v1_BackupId, callback: grpc.requestCallback<_doppel_v1_Backup__Output>): grpc.ClientUnaryCall;
  
  GetCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  GetCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  GetCluster(argument: _doppel_v1_ClusterRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  GetCluster(argument: _doppel_v1_ClusterRef, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  getCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  getCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  getCluster(argument: _doppel_v1_ClusterRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  getCluster(argument: _doppel_v1_ClusterRef, callback: grpc.requestCallback<_doppel_v1_Cluster__Output>): grpc.ClientUnaryCall;
  
  GetJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  GetJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  GetJob(argument: _doppel_v1_JobRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  GetJob(argument: _doppel_v1_JobRef, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  getJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  getJob(argument: _doppel_v1_JobRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  getJob(argument: _doppel_v1_JobRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  getJob(argument: _doppel_v1_JobRef, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  
  /**
   * A storage or metadata snapshot by id, with what it is linked to.
   */
  GetSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  GetSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  GetSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  GetSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  /**
   * A storage or metadata snapshot by id, with what it is linked to.
   */
  getSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  getSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  getSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  getSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  
  /**
   * What a VM's disks hold on its datastore: its own layers and the shared bases it reads (a linked or hot clone).
   */
  GetVMStorage(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  GetVMStorage(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  GetVMStorage(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  GetVMStorage(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  /**
   * What a VM's disks hold on its datastore: its own layers and the shared bases it reads (a linked or hot clone).
   */
  getVmStorage(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  getVmStorage(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  getVmStorage(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  getVmStorage(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_VMStorage__Output>): grpc.ClientUnaryCall;
  
  /**
   * The backup catalog, newest first (one VM's, or all).
   */
  ListBackups(argument: _doppel_v1_CatalogRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_CatalogRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_CatalogRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  ListBackups(argument: _doppel_v1_CatalogRequest, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  /**
   * The backup catalog, newest first (one VM's, or all).
   */
  listBackups(argument: _doppel_v1_CatalogRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_CatalogRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_CatalogRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  listBackups(argument: _doppel_v1_CatalogRequest, callback: grpc.requestCallback<_doppel_v1_CatalogResponse__Output>): grpc.ClientUnaryCall;
  
  ListClusters(argument: _doppel_v1_ListClustersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  ListClusters(argument: _doppel_v1_ListClustersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  ListClusters(argument: _doppel_v1_ListClustersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  ListClusters(argument: _doppel_v1_ListClustersRequest, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  listClusters(argument: _doppel_v1_ListClustersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  listClusters(argument: _doppel_v1_ListClustersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  listClusters(argument: _doppel_v1_ListClustersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  listClusters(argument: _doppel_v1_ListClustersRequest, callback: grpc.requestCallback<_doppel_v1_ListClustersResponse__Output>): grpc.ClientUnaryCall;
  
  ListHosts(argument: _doppel_v1_ListHostsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  ListHosts(argument: _doppel_v1_ListHostsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  ListHosts(argument: _doppel_v1_ListHostsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  ListHosts(argument: _doppel_v1_ListHostsRequest, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  listHosts(argument: _doppel_v1_ListHostsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  listHosts(argument: _doppel_v1_ListHostsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  listHosts(argument: _doppel_v1_ListHostsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  listHosts(argument: _doppel_v1_ListHostsRequest, callback: grpc.requestCallback<_doppel_v1_ListHostsResponse__Output>): grpc.ClientUnaryCall;
  
  ListJobs(argument: _doppel_v1_ListJobsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  ListJobs(argument: _doppel_v1_ListJobsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  ListJobs(argument: _doppel_v1_ListJobsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  ListJobs(argument: _doppel_v1_ListJobsRequest, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  listJobs(argument: _doppel_v1_ListJobsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  listJobs(argument: _doppel_v1_ListJobsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  listJobs(argument: _doppel_v1_ListJobsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  listJobs(argument: _doppel_v1_ListJobsRequest, callback: grpc.requestCallback<_doppel_v1_ListJobsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * One VM's snapshots (or all), oldest first: metadata snapshots and the storage snapshots linked to them.
   */
  ListSnapshots(argument: _doppel_v1_ListSnapshotsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  ListSnapshots(argument: _doppel_v1_ListSnapshotsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  ListSnapshots(argument: _doppel_v1_ListSnapshotsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  ListSnapshots(argument: _doppel_v1_ListSnapshotsRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  /**
   * One VM's snapshots (or all), oldest first: metadata snapshots and the storage snapshots linked to them.
   */
  listSnapshots(argument: _doppel_v1_ListSnapshotsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  listSnapshots(argument: _doppel_v1_ListSnapshotsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  listSnapshots(argument: _doppel_v1_ListSnapshotsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  listSnapshots(argument: _doppel_v1_ListSnapshotsRequest, callback: grpc.requestCallback<_doppel_v1_SnapshotList__Output>): grpc.ClientUnaryCall;
  
  ListVMs(argument: _doppel_v1_ListVMsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  ListVMs(argument: _doppel_v1_ListVMsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  ListVMs(argument: _doppel_v1_ListVMsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  ListVMs(argument: _doppel_v1_ListVMsRequest, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  listVMs(argument: _doppel_v1_ListVMsRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  listVMs(argument: _doppel_v1_ListVMsRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  listVMs(argument: _doppel_v1_ListVMsRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  listVMs(argument: _doppel_v1_ListVMsRequest, callback: grpc.requestCallback<_doppel_v1_ListVMsResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * The plan of such a restore, without restoring (--dry-run): the changes, and what cannot be satisfied.
   */
  PlanRestore(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  PlanRestore(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  PlanRestore(argument: _doppel_v1_RestoreBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  PlanRestore(argument: _doppel_v1_RestoreBackupRequest, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  /**
   * The plan of such a restore, without restoring (--dry-run): the changes, and what cannot be satisfied.
   */
  planRestore(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  planRestore(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  planRestore(argument: _doppel_v1_RestoreBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  planRestore(argument: _doppel_v1_RestoreBackupRequest, callback: grpc.requestCallback<_doppel_v1_RestorePlan__Output>): grpc.ClientUnaryCall;
  
  RemoveCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  RemoveCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  RemoveCluster(argument: _doppel_v1_ClusterRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  RemoveCluster(argument: _doppel_v1_ClusterRef, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  removeCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  removeCluster(argument: _doppel_v1_ClusterRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  removeCluster(argument: _doppel_v1_ClusterRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  removeCluster(argument: _doppel_v1_ClusterRef, callback: grpc.requestCallback<_doppel_v1_RemoveClusterResponse__Output>): grpc.ClientUnaryCall;
  
  /**
   * Creates a VM from a backup on a host or in a cluster, with its disks and configuration. A backup's save
   * set (seed 003) is planned against the destination cluster first: the VM's configuration is changed to
   * fit it, and a restore the destination cannot satisfy fails before any data moves.
   */
  RestoreBackup(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  RestoreBackup(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  RestoreBackup(argument: _doppel_v1_RestoreBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  RestoreBackup(argument: _doppel_v1_RestoreBackupRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  /**
   * Creates a VM from a backup on a host or in a cluster, with its disks and configuration. A backup's save
   * set (seed 003) is planned against the destination cluster first: the VM's configuration is changed to
   * fit it, and a restore the destination cannot satisfy fails before any data moves.
   */
  restoreBackup(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  restoreBackup(argument: _doppel_v1_RestoreBackupRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  restoreBackup(argument: _doppel_v1_RestoreBackupRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  restoreBackup(argument: _doppel_v1_RestoreBackupRequest, callback: grpc.requestCallback<_doppel_v1_Job__Output>): grpc.ClientUnaryCall;
  
  /**
   * Reverts the VM's disks to a storage snapshot, and its configuration and execution state to the linked metadata snapshot.
   */
  RevertSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  RevertSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  RevertSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  RevertSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  /**
   * Reverts the VM's disks to a storage snapshot, and its configuration and execution state to the linked metadata snapshot.
   */
  revertSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  revertSnapshot(argument: _doppel_v1_SnapshotRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  revertSnapshot(argument: _doppel_v1_SnapshotRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  revertSnapshot(argument: _doppel_v1_SnapshotRef, callback: grpc.requestCallback<_doppel_v1_RevertSnapshotResponse__Output>): grpc.ClientUnaryCall;
  
  RunVM(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  RunVM(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  RunVM(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  RunVM(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  runVm(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  runVm(argument: _doppel_v1_VMRef, metadata: grpc.Metadata, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  runVm(argument: _doppel_v1_VMRef, options: grpc.CallOptions, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  runVm(argument: _doppel_v1_VMRef, callback: grpc.requestCallback<_doppel_v1_VM__Output>): grpc.ClientUnaryCall;
  
  /**
   * Re-hashes every chunk of a backup in the repository; the last message names any bad chunk.
   */
  VerifyBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyReport__Output>;
  VerifyBackup(argument: _doppel_v1_BackupId, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyReport__Output>;
  /**
   * Re-hashes every chunk of a backup in the repository; the last message names any bad chunk.
   */
  verifyBackup(argument: _doppel_v1_BackupId, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyReport__Output>;
  verifyBackup(argument: _doppel_v1_BackupId, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_VerifyReport__Output>;
  
  /**
   * Replays stored events (from start_seq, or from the newest when 0), then follows when asked.
   */
  WatchEvents(argument: _doppel_v1_WatchEventsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Event__Output>;
  WatchEvents(argument: _doppel_v1_WatchEventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Event__Output>;
  /**
   * Replays stored events (from start_seq, or from the newest when 0), then follows when asked.
   */
  watchEvents(argument: _doppel_v1_WatchEventsRequest, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Event__Output>;
  watchEvents(argument: _doppel_v1_WatchEventsRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<_doppel_v1_Event__Output>;
  
}

/**
 * The coordinator's API for schedulers and the CLI. The same calls are served as
 * JSON over HTTP (see README, "API").
 */
export interface CoordinatorHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Clusters (seed 003): each agent belongs to one (--cluster). A registered cluster's networks,
   * datastores, CPU models and memory limit are what VMs are checked against and restores planned for.
   */
  AddCluster: grpc.handleUnaryCall<_doppel_v1_AddClusterRequest__Output, _doppel_v1_Cluster>;
  
  /**
   * qemu driver: takes a QEMU started outside doppel under the agent's care, by its QMP socket on that host. Its
   * disks stay where they are; doppel never restarts it (it does not know its command line).
   */
  AdoptVM: grpc.handleUnaryCall<_doppel_v1_AdoptVMRequest__Output, _doppel_v1_VM>;
  
  /**
   * Backs a VM up: through a live clone on a second host (default), or directly from the VM.
   */
  BackupVM: grpc.handleUnaryCall<_doppel_v1_BackupVMRequest__Output, _doppel_v1_Job>;
  
  /**
   * Cancels a running clone or backup job; the source VM keeps running and the half-made clone goes.
   */
  CancelJob: grpc.handleUnaryCall<_doppel_v1_JobRef__Output, _doppel_v1_Job>;
  
  /**
   * Finds storage snapshots without metadata and metadata snapshots without storage.
   */
  CheckSnapshots: grpc.handleUnaryCall<_doppel_v1_CheckSnapshotsRequest__Output, _doppel_v1_SnapshotCheckReport>;
  
  CloneVM: grpc.handleUnaryCall<_doppel_v1_CloneVMRequest__Output, _doppel_v1_Job>;
  
  /**
   * Snapshot pairs (seed 002): a storage snapshot of every disk on the VM's host, and a metadata
   * snapshot (configuration, execution state, the host's resource usage for the VM) in NATS KV,
   * with the same timestamp. storage_only: a new storage snapshot linked to the VM's latest
   * metadata snapshot, which stays unchanged.
   */
  CreateSnapshot: grpc.handleUnaryCall<_doppel_v1_CreateSnapshotRequest__Output, _doppel_v1_SnapshotPair>;
  
  CreateVM: grpc.handleUnaryCall<_doppel_v1_CreateVMRequest__Output, _doppel_v1_VM>;
  
  /**
   * Deletes a storage snapshot; the rest of the copy-on-write chain stays readable. The metadata
   * snapshot goes with the last storage snapshot linked to it.
   */
  DeleteSnapshot: grpc.handleUnaryCall<_doppel_v1_SnapshotRef__Output, _doppel_v1_DeleteSnapshotResponse>;
  
  /**
   * Stops and removes a VM. Refused while a job runs on it.
   */
  DestroyVM: grpc.handleUnaryCall<_doppel_v1_VMRef__Output, _doppel_v1_DestroyVMResponse>;
  
  GetBackup: grpc.handleUnaryCall<_doppel_v1_BackupId__Output, _doppel_v1_Backup>;
  
  GetCluster: grpc.handleUnaryCall<_doppel_v1_ClusterRef__Output, _doppel_v1_Cluster>;
  
  GetJob: grpc.handleUnaryCall<_doppel_v1_JobRef__Output, _doppel_v1_Job>;
  
  /**
   * A storage or metadata snapshot by id, with what it is linked to.
   */
  GetSnapshot: grpc.handleUnaryCall<_doppel_v1_SnapshotRef__Output, _doppel_v1_SnapshotList>;
  
  /**
   * What a VM's disks hold on its datastore: its own layers and the shared bases it reads (a linked or hot clone).
   */
  GetVMStorage: grpc.handleUnaryCall<_doppel_v1_VMRef__Output, _doppel_v1_VMStorage>;
  
  /**
   * The backup catalog, newest first (one VM's, or all).
   */
  ListBackups: grpc.handleUnaryCall<_doppel_v1_CatalogRequest__Output, _doppel_v1_CatalogResponse>;
  
  ListClusters: grpc.handleUnaryCall<_doppel_v1_ListClustersRequest__Output, _doppel_v1_ListClustersResponse>;
  
  ListHosts: grpc.handleUnaryCall<_doppel_v1_ListHostsRequest__Output, _doppel_v1_ListHostsResponse>;
  
  ListJobs: grpc.handleUnaryCall<_doppel_v1_ListJobsRequest__Output, _doppel_v1_ListJobsResponse>;
  
  /**
   * One VM's snapshots (or all), oldest first: metadata snapshots and the storage snapshots linked to them.
   */
  ListSnapshots: grpc.handleUnaryCall<_doppel_v1_ListSnapshotsRequest__Output, _doppel_v1_SnapshotList>;
  
  ListVMs: grpc.handleUnaryCall<_doppel_v1_ListVMsRequest__Output, _doppel_v1_ListVMsResponse>;
  
  /**
   * The plan of such a restore, without restoring (--dry-run): the changes, and what cannot be satisfied.
   */
  PlanRestore: grpc.handleUnaryCall<_doppel_v1_RestoreBackupRequest__Output, _doppel_v1_RestorePlan>;
  
  RemoveCluster: grpc.handleUnaryCall<_doppel_v1_ClusterRef__Output, _doppel_v1_RemoveClusterResponse>;
  
  /**
   * Creates a VM from a backup on a host or in a cluster, with its disks and configuration. A backup's save
   * set (seed 003) is planned against the destination cluster first: the VM's configuration is changed to
   * fit it, and a restore the destination cannot satisfy fails before any data moves.
   */
  RestoreBackup: grpc.handleUnaryCall<_doppel_v1_RestoreBackupRequest__Output, _doppel_v1_Job>;
  
  /**
   * Reverts the VM's disks to a storage snapshot, and its configuration and execution state to the linked metadata snapshot.
   */
  RevertSnapshot: grpc.handleUnaryCall<_doppel_v1_SnapshotRef__Output, _doppel_v1_RevertSnapshotResponse>;
  
  RunVM: grpc.handleUnaryCall<_doppel_v1_VMRef__Output, _doppel_v1_VM>;
  
  /**
   * Re-hashes every chunk of a backup in the repository; the last message names any bad chunk.
   */
  VerifyBackup: grpc.handleServerStreamingCall<_doppel_v1_BackupId__Output, _doppel_v1_VerifyReport>;
  
  /**
   * Replays stored events (from start_seq, or from the newest when 0), then follows when asked.
   */
  WatchEvents: grpc.handleServerStreamingCall<_doppel_v1_WatchEventsRequest__Output, _doppel_v1_Event>;
  
}

export interface CoordinatorDefinition extends grpc.ServiceDefinition {
  AddCluster: MethodDefinition<_doppel_v1_AddClusterRequest, _doppel_v1_Cluster, _doppel_v1_AddClusterRequest__Output, _doppel_v1_Cluster__Output>
  AdoptVM: MethodDefinition<_doppel_v1_AdoptVMRequest, _doppel_v1_VM, _doppel_v1_AdoptVMRequest__Output, _doppel_v1_VM__Output>
  BackupVM: MethodDefinition<_doppel_v1_BackupVMRequest, _doppel_v1_Job, _doppel_v1_BackupVMRequest__Output, _doppel_v1_Job__Output>
  CancelJob: MethodDefinition<_doppel_v1_JobRef, _doppel_v1_Job, _doppel_v1_JobRef__Output, _doppel_v1_Job__Output>
  CheckSnapshots: MethodDefinition<_doppel_v1_CheckSnapshotsRequest, _doppel_v1_SnapshotCheckReport, _doppel_v1_CheckSnapshotsRequest__Output, _doppel_v1_SnapshotCheckReport__Output>
  CloneVM: MethodDefinition<_doppel_v1_CloneVMRequest, _doppel_v1_Job, _doppel_v1_CloneVMRequest__Output, _doppel_v1_Job__Output>
  CreateSnapshot: MethodDefinition<_doppel_v1_CreateSnapshotRequest, _doppel_v1_SnapshotPair, _doppel_v1_CreateSnapshotRequest__Output, _doppel_v1_SnapshotPair__Output>
  CreateVM: MethodDefinition<_doppel_v1_CreateVMRequest, _doppel_v1_VM, _doppel_v1_CreateVMRequest__Output, _doppel_v1_VM__Output>
  DeleteSnapshot: MethodDefinition<_doppel_v1_SnapshotRef, _doppel_v1_DeleteSnapshotResponse, _doppel_v1_SnapshotRef__Output, _doppel_v1_DeleteSnapshotResponse__Output>
  DestroyVM: MethodDefinition<_doppel_v1_VMRef, _doppel_v1_DestroyVMResponse, _doppel_v1_VMRef__Output, _doppel_v1_DestroyVMResponse__Output>
  GetBackup: MethodDefinition<_doppel_v1_BackupId, _doppel_v1_Backup, _doppel_v1_BackupId__Output, _doppel_v1_Backup__Output>
  GetCluster: MethodDefinition<_doppel_v1_ClusterRef, _doppel_v1_Cluster, _doppel_v1_ClusterRef__Output, _doppel_v1_Cluster__Output>
  GetJob: MethodDefinition<_doppel_v1_JobRef, _doppel_v1_Job, _doppel_v1_JobRef__Output, _doppel_v1_Job__Output>
  GetSnapshot: MethodDefinition<_doppel_v1_SnapshotRef, _doppel_v1_SnapshotList, _doppel_v1_SnapshotRef__Output, _doppel_v1_SnapshotList__Output>
  GetVMStorage: MethodDefinition<_doppel_v1_VMRef, _doppel_v1_VMStorage, _doppel_v1_VMRef__Output, _doppel_v1_VMStorage__Output>
  ListBackups: MethodDefinition<_doppel_v1_CatalogRequest, _doppel_v1_CatalogResponse, _doppel_v1_CatalogRequest__Output, _doppel_v1_CatalogResponse__Output>
  ListClusters: MethodDefinition<_doppel_v1_ListClustersRequest, _doppel_v1_ListClustersResponse, _doppel_v1_ListClustersRequest__Output, _doppel_v1_ListClustersResponse__Output>
  ListHosts: MethodDefinition<_doppel_v1_ListHostsRequest, _doppel_v1_ListHostsResponse, _doppel_v1_ListHostsRequest__Output, _doppel_v1_ListHostsResponse__Output>
  ListJobs: MethodDefinition<_doppel_v1_ListJobsRequest, _doppel_v1_ListJobsResponse, _doppel_v1_ListJobsRequest__Output, _doppel_v1_ListJobsResponse__Output>
  ListSnapshots: MethodDefinition<_doppel_v1_ListSnapshotsRequest, _doppel_v1_SnapshotList, _doppel_v1_ListSnapshotsRequest__Output, _doppel_v1_SnapshotList__Output>
  ListVMs: MethodDefinition<_doppel_v1_ListVMsRequest, _doppel_v1_ListVMsResponse, _doppel_v1_ListVMsRequest__Output, _doppel_v1_ListVMsResponse__Output>
  PlanRestore: MethodDefinition<_doppel_v1_RestoreBackupRequest, _doppel_v1_RestorePlan, _doppel_v1_RestoreBackupRequest__Output, _doppel_v1_RestorePlan__Output>
  RemoveCluster: MethodDefinition<_doppel_v1_ClusterRef, _doppel_v1_RemoveClusterResponse, _doppel_v1_ClusterRef__Output, _doppel_v1_RemoveClusterResponse__Output>
  RestoreBackup: MethodDefinition<_doppel_v1_RestoreBackupRequest, _doppel_v1_Job, _doppel_v1_RestoreBackupRequest__Output, _doppel_v1_Job__Output>
  RevertSnapshot: MethodDefinition<_doppel_v1_SnapshotRef, _doppel_v1_RevertSnapshotResponse, _doppel_v1_SnapshotRef__Output, _doppel_v1_RevertSnapshotResponse__Output>
  RunVM: MethodDefinition<_doppel_v1_VMRef, _doppel_v1_VM, _doppel_v1_VMRef__Output, _doppel_v1_VM__Output>
  VerifyBackup: MethodDefinition<_doppel_v1_BackupId, _doppel_v1_VerifyReport, _doppel_v1_BackupId__Output, _doppel_v1_VerifyReport__Output>
  WatchEvents: MethodDefinition<_doppel_v1_WatchEventsRequest, _doppel_v1_Event, _doppel_v1_WatchEventsRequest__Output, _doppel_v1_Event__Output>
}
