/** Values the app starts with (they match hearth-assistant's defaults). */
import type { SamplingSettings } from './types';

export const DEFAULT_SAMPLING: SamplingSettings = {
  temperature: 0.7,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repeatPenalty: 1.1,
  maxTokens: 1024,
  seed: null,
};

export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';

/** The title the assistant gives a conversation until its first message names it. */
export const NEW_CONVERSATION_TITLE = 'New chat';
