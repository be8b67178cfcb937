import { BadRequestException, ConflictException, HttpException, NotFoundException } from '@nestjs/common';
import { StorageError } from '@sendense/storage';

/** Map a storage error (path-free message) to the HTTP answer it suggests. */
export function httpErrorOf(err: unknown): HttpException | unknown {
  if (err instanceof StorageError) {
    const body = err.toJSON();
    if (err.httpStatus === 404) return new NotFoundException(body);
    if (err.httpStatus === 409) return new ConflictException(body);
    if (err.httpStatus === 400) return new BadRequestException(body);
    return new HttpException(body, err.httpStatus);
  }
  return err;
}
