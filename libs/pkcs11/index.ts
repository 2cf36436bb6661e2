// Keys in a PKCS#11 token (an HSM, or SoftHSM2 for development and tests).
export * from './token';
