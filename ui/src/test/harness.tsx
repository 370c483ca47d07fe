import { expect } from "vitest";
/** Renders the whole app on the mock backend for component tests. */
import { render, waitFor } from '@testing-library/preact';
import { App } from '../app/App';
import { createMockBackend, sampleModel, type MockOptions } from '../backend/mock';
import type { Messages } from '../i18n';

export async function renderApp(options: MockOptions & { messages?: Messages } = {}) {
  const backend = createMockBackend({ models: [sampleModel()], ...options });
  const view = render(<App backend={backend} messages={options.messages} />);
  await waitFor(() => expect(document.querySelector('.loading')).toBeNull());
  return { backend, ...view };
}

export function composer(): HTMLTextAreaElement {
  return document.querySelector('.composer-input') as HTMLTextAreaElement;
}

export function liveRegion(): HTMLElement {
  return document.getElementById('live-region') as HTMLElement;
}

export function messages(): HTMLElement[] {
  return [...document.querySelectorAll<HTMLElement>('[data-pane="chat"] article.message')];
}
