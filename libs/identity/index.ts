export * from './national-id';
export * from './mobile';
export * from './redaction';
