// Original file: proto/doppel/v1/coordinator.proto


export interface Disk {
  'name'?: (string);
  'sizeMib'?: (number);
  /**
   * '' = blank; a name = that template's content
   */
  'image'?: (string);
}

export interface Disk__Output {
  'name': (string);
  'sizeMib': (number);
  /**
   * '' = blank; a name = that template's content
   */
  'image': (string);
}
