import { ConfigurationError, loadConfig } from './config/gateway-config';
import { BankRegistryFileError } from './banks/bank-registry-file';
import { createGateway } from './gateway';
import { JsonLogger } from './logging/json-logger';

async function main(): Promise<void> {
  const logger = new JsonLogger('gateway');
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    logger.emit('error', (error as Error).message);
    process.exit(78); // EX_CONFIG
  }
  try {
    const app = await createGateway(config, logger);
    await app.listen({ port: config.HTTP_PORT, host: config.HTTP_HOST });
    const address = app.getHttpServer().address();
    const port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
    logger.emit('info', `absher-bank-gateway listening: signed JSON on http://${config.HTTP_HOST}:${port}`, { httpPort: port });
  } catch (error) {
    const known = error instanceof ConfigurationError || error instanceof BankRegistryFileError;
    logger.emit('error', known ? (error as Error).message : 'the gateway could not start', known ? {} : { error });
    process.exit(known ? 78 : 1);
  }
}

void main();
