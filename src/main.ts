import { ConfigurationError, GatewayConfig, loadConfig, ServiceUnreachableError } from './config/gateway-config';
import { BankRegistryFileError } from './banks/bank-registry-file';
import { Store } from './database/store';
import { createGateway } from './gateway';
import { JsonLogger, LogLevel, logProcessWarnings } from './logging/json-logger';

/**
 * The gateway's logger, which also notes the ISO 8583 port the ATM listener
 * reports once bound (with ISO8583_PORT=0 it is known nowhere else), for the
 * DATA_DIR lock.
 */
class StartupLogger extends JsonLogger {
  iso8583Port: number | undefined;

  override emit(level: LogLevel, message: string, fields: Record<string, unknown> = {}): void {
    if (typeof fields.iso8583Port === 'number') this.iso8583Port = fields.iso8583Port;
    super.emit(level, message, fields);
  }

  /**
   * Nest logs a failed HTTP bind, and any error of the start, as the raw error; main() says it once,
   * in the variables' words.
   */
  override error(message: unknown, ...rest: [string?, string?]): void {
    if (rest.includes('NestApplication') && String(message).includes('EADDRINUSE')) return;
    if (rest.includes('ExceptionHandler')) return;
    super.error(message, ...rest);
  }
}

async function main(): Promise<void> {
  const logger = new StartupLogger('gateway');
  logProcessWarnings(logger);
  let config;
  try {
    config = loadConfig(process.env, logger);
  } catch (error) {
    logger.emit('error', (error as Error).message);
    process.exit(78); // EX_CONFIG
  }
  let stage: 'init' | 'http' = 'init';
  try {
    // First: a second gateway on the same DATA_DIR stops here, before it touches the first one's files.
    const dataDirLock = Store.claimDataDir(config, logger);
    const app = await createGateway(config, logger);
    await app.init();
    await app.startAllMicroservices(); // binds the ISO 8583 transport; then only the HTTP listener can fail to bind
    stage = 'http';
    await app.listen({ port: config.HTTP_PORT, host: config.HTTP_HOST });
    const address = app.getHttpServer().address();
    const port = typeof address === 'object' && address ? address.port : config.HTTP_PORT;
    dataDirLock?.recordPorts({ httpPort: port, iso8583Port: logger.iso8583Port });
    logger.emit('info', `absher-bank-gateway listening: signed JSON on http://${config.HTTP_HOST}:${port}`, { httpPort: port });
  } catch (caught) {
    const error = portInUse(caught, stage, config) ?? caught;
    if (error instanceof ServiceUnreachableError) {
      logger.emit('error', error.message);
      process.exit(69); // EX_UNAVAILABLE
    }
    const known = error instanceof ConfigurationError || error instanceof BankRegistryFileError;
    logger.emit('error', known ? (error as Error).message : 'the gateway could not start', known ? {} : { error });
    process.exit(known ? 78 : 1);
  }
}

/** EADDRINUSE, said as the variables that choose the address, rather than as a stack trace. */
function portInUse(error: unknown, stage: 'init' | 'http', config: GatewayConfig): ConfigurationError | null {
  if ((error as NodeJS.ErrnoException | null)?.code !== 'EADDRINUSE') return null;
  const [portName, hostName, port, host] =
    stage === 'http' ? ['HTTP_PORT', 'HTTP_HOST', config.HTTP_PORT, config.HTTP_HOST] : ['ISO8583_PORT', 'ISO8583_HOST', config.ISO8583_PORT, config.ISO8583_HOST];
  const same = stage === 'http' && config.HTTP_PORT === config.ISO8583_PORT ? ' (ISO8583_PORT is the same port)' : '';
  return new ConfigurationError(
    `${portName} ${port} on ${hostName} ${host} is already in use${same}: another process (perhaps another gateway) listens there. ` +
      `Stop it, or set ${portName} to a free port (0 picks one) or another ${hostName}`,
  );
}

void main();
