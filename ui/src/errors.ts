/**
 * An error as the user reads it. The backend's `message` is English; for the codes listed here
 * the UI has its own sentence in every language (the English ones repeat the backend's message,
 * other languages translate it and may quote the details). Unknown codes show the message.
 */
import type { AppError } from './backend/types';
import type { MessageKey, Translate } from './i18n';

const KNOWN: Record<string, MessageKey> = {
  'models.none': 'error.models.none',
  'models.missing_file': 'error.models.missing_file',
  'models.not_found': 'error.models.not_found',
  'engine.not_gguf': 'error.engine.not_gguf',
  'engine.corrupt_model': 'error.engine.corrupt_model',
  'engine.unsupported_architecture': 'error.engine.unsupported_architecture',
  'engine.context_overflow': 'error.engine.context_overflow',
  'chat.empty': 'error.chat.empty',
  'chat.invalid_title': 'error.chat.invalid_title',
  'settings.invalid': 'error.settings.invalid',
  'link.refused': 'error.link.refused',
  'store.disk_full': 'error.store.disk_full',
  'store.not_found': 'error.store.not_found',
  'download.offline': 'error.download.offline',
  'download.not_found': 'error.download.not_found',
  'download.disk_full': 'error.download.disk_full',
  'download.checksum': 'error.download.checksum',
  'download.unauthorized': 'error.download.unauthorized',
  'download.unavailable': 'error.download.unavailable',
  'download.busy': 'error.download.busy',
  'download.quantize': 'error.download.quantize',
  'download.unknown_model': 'error.download.unknown_model',
  'download.unknown_quant': 'error.download.unknown_quant',
  'download.no_source': 'error.download.no_source',
  'download.server': 'error.download.server',
  'download.invalid_model': 'error.download.invalid_model',
  'download.io': 'error.download.io',
  'documents.encrypted_pdf': 'error.documents.encrypted_pdf',
  'documents.no_text_layer': 'error.documents.no_text_layer',
  'documents.corrupt': 'error.documents.corrupt',
  'documents.too_large': 'error.documents.too_large',
  'documents.too_many_pages': 'error.documents.too_many_pages',
  'documents.decompression_limit': 'error.documents.decompression_limit',
  'documents.unsupported': 'error.documents.unsupported',
  'documents.empty': 'error.documents.empty',
  'documents.io': 'error.documents.io',
  'summarize.nothing_to_summarize': 'error.summarize.nothing_to_summarize',
  'summarize.already_running': 'error.summarize.already_running',
  'summarize.unsupported_language': 'error.summarize.unsupported_language',
  'summarize.invalid_request': 'error.summarize.invalid_request',
  'summarize.context_too_small': 'error.summarize.context_too_small',
  'ask.empty': 'error.ask.empty',
  'ask.nothing_found': 'error.ask.nothing_found',
};

export function describeError(error: AppError, t: Translate): string {
  const key = KNOWN[error.code];
  return key ? t(key, { message: error.message }) : error.message;
}
