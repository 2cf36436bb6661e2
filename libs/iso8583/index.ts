// What the gateway needs of ISO 8583. The switch side (AtmSwitchClient, for tools and tests) is
// libs/iso8583/atm-switch-client, never imported by src/.
export * from './codec';
export * from './field-formats';
export * from './framing';
export * from './mac';
export * from './mac-filter';
export * from './masking';
export * from './message-definitions';
export * from './tlv';
export * from './views';
