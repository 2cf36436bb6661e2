// The gateway's certificate checks. Issuing certificates (development PKI, tests) is
// libs/pki/certificate-builder, imported by the tools and tests that need it, never by src/.
export * from './certificate';
