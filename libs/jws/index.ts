export * from './detached-jws';
export * from './request-signing';
