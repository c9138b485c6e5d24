// Original file: proto/doppel/v1/coordinator.proto

import type { Backup as _doppel_v1_Backup, Backup__Output as _doppel_v1_Backup__Output } from '../../doppel/v1/Backup.js';

export interface CatalogResponse {
  'backups'?: (_doppel_v1_Backup)[];
}

export interface CatalogResponse__Output {
  'backups': (_doppel_v1_Backup__Output)[];
}
