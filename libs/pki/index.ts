export * from './certificate';
export * from './certificate-builder';
