export const API_PREFIX = 'api/v1';
export const DOCS_PATH = 'api/docs';
export const BULL_BOARD_PATH = '/admin/queues';
