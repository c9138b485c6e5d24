// Original file: proto/doppel/v1/coordinator.proto


/**
 * One change a restore makes to the VM's configuration to fit the destination cluster.
 */
export interface PlanChange {
  /**
   * network | datastore | path | cpu-model
   */
  'kind'?: (string);
  /**
   * nic0, datastore, disk0, cpu
   */
  'item'?: (string);
  'from'?: (string);
  'to'?: (string);
  /**
   * the rule that chose 'to': same VLAN, most free space, compatible CPU model, --map...
   */
  'rule'?: (string);
}

/**
 * One change a restore makes to the VM's configuration to fit the destination cluster.
 */
export interface PlanChange__Output {
  /**
   * network | datastore | path | cpu-model
   */
  'kind': (string);
  /**
   * nic0, datastore, disk0, cpu
   */
  'item': (string);
  'from': (string);
  'to': (string);
  /**
   * the rule that chose 'to': same VLAN, most free space, compatible CPU model, --map...
   */
  'rule': (string);
}
