import {
  BadRequestException,
  Body,
  ConflictException,
  Controller,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
} from '@nestjs/common';
import { OrderNotPayableError } from './order.entity.js';
import { OrdersService } from './orders.service.js';

interface PlaceOrderBody {
  customerId?: unknown;
  totalCents?: unknown;
}

@Controller('orders')
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  @Post()
  async place(@Body() body: PlaceOrderBody) {
    if (typeof body.customerId !== 'string' || body.customerId.length === 0 || body.customerId.length > 100) {
      throw new BadRequestException('customerId must be a non-empty string of at most 100 characters.');
    }
    if (typeof body.totalCents !== 'number' || !Number.isInteger(body.totalCents) || body.totalCents <= 0) {
      throw new BadRequestException('totalCents must be a positive integer.');
    }
    const order = await this.orders.place(body.customerId, body.totalCents);
    return { id: order.id, status: order.status };
  }

  @Post(':id/pay')
  @HttpCode(200)
  async pay(@Param('id', new ParseUUIDPipe()) id: string) {
    try {
      const order = await this.orders.pay(id);
      return { id: order.id, status: order.status };
    } catch (error) {
      if (error instanceof OrderNotPayableError) throw new ConflictException(error.message);
      throw error;
    }
  }
}
