// Original file: proto/doppel/v1/coordinator.proto


export interface AdoptVMRequest {
  /**
   * the host the QEMU runs on (its agent must run the qemu driver)
   */
  'host'?: (string);
  /**
   * absolute path of the QEMU's QMP unix socket on that host
   */
  'qmpSocket'?: (string);
  /**
   * the VM's name in doppel
   */
  'name'?: (string);
}

export interface AdoptVMRequest__Output {
  /**
   * the host the QEMU runs on (its agent must run the qemu driver)
   */
  'host': (string);
  /**
   * absolute path of the QEMU's QMP unix socket on that host
   */
  'qmpSocket': (string);
  /**
   * the VM's name in doppel
   */
  'name': (string);
}
