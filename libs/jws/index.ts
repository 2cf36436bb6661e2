// What the gateway needs of JWS. Signing as a bank does (tools, tests) is libs/jws/request-signing.
export * from './detached-jws';
