// Original file: proto/doppel/v1/coordinator.proto


export interface BackupVMRequest {
  'vm'?: (string);
  /**
   * snapshot the VM itself instead of a live clone
   */
  'direct'?: (boolean);
  /**
   * only what changed since the VM's last backup (full when there is no valid base)
   */
  'incremental'?: (boolean);
  'keepClone'?: (boolean);
  /**
   * where the clone runs (default: the host with the most free memory)
   */
  'cloneHost'?: (string);
  /**
   * the clone's switchover (default 300)
   */
  'maxDowntimeMs'?: (number);
  'onNonConvergence'?: (string);
  'maxBandwidthMbps'?: (number);
  /**
   * Let the clone run this long before its disk is snapshotted (its services start, its guest settles).
   */
  'cloneSettleMs'?: (number);
  /**
   * Tests only (the agent must allow fault injection): a bypass-mode backup skips its revert to t1.
   */
  'skipRevert'?: (boolean);
}

export interface BackupVMRequest__Output {
  'vm': (string);
  /**
   * snapshot the VM itself instead of a live clone
   */
  'direct': (boolean);
  /**
   * only what changed since the VM's last backup (full when there is no valid base)
   */
  'incremental': (boolean);
  'keepClone': (boolean);
  /**
   * where the clone runs (default: the host with the most free memory)
   */
  'cloneHost': (string);
  /**
   * the clone's switchover (default 300)
   */
  'maxDowntimeMs': (number);
  'onNonConvergence': (string);
  'maxBandwidthMbps': (number);
  /**
   * Let the clone run this long before its disk is snapshotted (its services start, its guest settles).
   */
  'cloneSettleMs': (number);
  /**
   * Tests only (the agent must allow fault injection): a bypass-mode backup skips its revert to t1.
   */
  'skipRevert': (boolean);
}
