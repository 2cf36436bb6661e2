export * from './codec';
export * from './field-formats';
export * from './framing';
export * from './mac';
export * from './masking';
export * from './tlv';
export * from './atm-switch-client';
