/**
 * The end-to-end suites of both channels, again with KEY_STORE=pkcs11: each
 * environment gets a SoftHSM2 token of its own with the gateway's signing
 * key and hash keys made in it, and the banks' MAC keys imported under a
 * zone key with the operators' ceremony (test-environment.ts). Every signed
 * JSON answer is then ES256-signed by the token, every ISO 8583 MAC
 * computed and checked by it, and the suites' assertions hold unchanged;
 * the MAC key rotation runs on the token's keys too.
 */
process.env.TEST_KEY_STORE = 'pkcs11';

describe('signed JSON (signed-json.e2e-spec.ts) under KEY_STORE=pkcs11', () => {
  require('./signed-json.e2e-spec');
});

describe('ISO 8583 (atm.e2e-spec.ts) under KEY_STORE=pkcs11', () => {
  require('./atm.e2e-spec');
});

describe('MAC key rotation on live traffic (mac-key-rotation.e2e-spec.ts) under KEY_STORE=pkcs11', () => {
  require('./mac-key-rotation.e2e-spec');
});
