/**
 * Request ids of the two channels live in one table, unique per bank, so
 * they must never meet: an ISO 8583 request's key is made by the gateway
 * from its fields (`acquirer:field7:STAN:RRN:terminal`, or `atm:` and a
 * hash when those hold other characters), and a bank may not choose such an
 * id over HTTP. Otherwise an HTTP id could take the key of a coming 0200
 * (answered 96), or a 0420 could name an internet-banking activation.
 */
const ATM_KEY = /^(?:[0-9]+:[0-9]{10}:[0-9]{6}:|atm:[0-9a-f]{48}$)/;

export function isAtmRequestKey(requestId: string): boolean {
  return ATM_KEY.test(requestId);
}

/** For problem details. */
export const ATM_REQUEST_KEY_RULE = 'ids of the form acquirer:MMDDhhmmss:STAN:… (and atm:<hash>) are the keys of ISO 8583 requests, reserved for that channel';
