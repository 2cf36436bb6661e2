import { ArgumentsHost, Catch, Controller, Inject, RpcExceptionFilter, UseFilters } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Observable, throwError } from 'rxjs';
import { IsoFields } from '../../../libs/iso8583';
import { AtmExchange } from './atm-exchange';
import { ATM_TRANSPORT, AtmContext } from './atm-transport';

/**
 * Hands a handler's error back to the transport as it was thrown: the exchange logs it once, with the
 * message's MTI and STAN, and answers 96 (Nest's default filter would log it bare and replace it).
 */
@Catch()
export class RethrowToTransport implements RpcExceptionFilter {
  catch(error: unknown, _host: ArgumentsHost): Observable<never> {
    return throwError(() => error);
  }
}

/** The ATM channel's message types (spec 4.2), each routed by its MTI to the exchange. */
@Controller()
@UseFilters(RethrowToTransport)
export class AtmController {
  constructor(@Inject(AtmExchange) private readonly exchange: AtmExchange) {}

  /** Sign-on, sign-off, echo. */
  @MessagePattern('0800', ATM_TRANSPORT)
  networkManagement(@Payload() request: IsoFields): Buffer {
    return this.exchange.networkManagement(request);
  }

  @MessagePattern('0200', ATM_TRANSPORT)
  activation(@Payload() request: IsoFields, @Ctx() context: AtmContext): Promise<Buffer> {
    return this.exchange.activation(request, context.message);
  }

  /** A reversal advice and its repeat. */
  @MessagePattern(['0420', '0421'], ATM_TRANSPORT)
  reversal(@Payload() request: IsoFields, @Ctx() context: AtmContext): Promise<Buffer> {
    return this.exchange.reversal(request, context.message);
  }
}
