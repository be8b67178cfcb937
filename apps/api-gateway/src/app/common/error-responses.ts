import { applyDecorators } from '@nestjs/common';
import { ApiBadRequestResponse, ApiForbiddenResponse, ApiProperty, ApiUnauthorizedResponse } from '@nestjs/swagger';

/** The JSON body of every error response. */
export class ErrorResponseDto {
  @ApiProperty({ example: 403 }) statusCode!: number;
  @ApiProperty({ example: 'this endpoint needs one of the roles admin, operator; your key has viewer' }) message!: string;
  @ApiProperty({ example: 'Forbidden' }) error!: string;
}

/** 401/403 (and 400 for bodies) that every authenticated endpoint can answer. */
export function ApiAuthErrors(opts: { body?: boolean } = {}) {
  const decorators = [
    ApiUnauthorizedResponse({ description: 'No API key, or an invalid or revoked one', type: ErrorResponseDto }),
    ApiForbiddenResponse({ description: "The key's role may not call this endpoint", type: ErrorResponseDto }),
  ];
  if (opts.body) decorators.push(ApiBadRequestResponse({ description: 'The request failed validation', type: ErrorResponseDto }));
  return applyDecorators(...decorators);
}
