/**
 * What every view shares, through one Preact context: the backend, the settings and models
 * (with ways to change them), navigation, the live region, and error reporting.
 */
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { AppError, AppInfo, Backend, InstalledModel, Settings } from '../backend/types';
import type { MessageKey, Vars } from '../i18n';

export type View = 'chat' | 'translate' | 'documents' | 'models' | 'settings';

/** What the chat view lets the app's shortcuts do. */
export interface ChatActions {
  newChat(): void;
  focusInput(): void;
  focusSearch(): void;
  stop(): boolean;
  moveConversation(delta: number): void;
}

export interface AppContextValue {
  backend: Backend;
  info: AppInfo;
  settings: Settings;
  saveSettings(next: Settings): Promise<boolean>;
  models: InstalledModel[];
  refreshModels(): Promise<void>;
  /** Imports a .gguf path (the Models view, the welcome screen, file drops). */
  importModel(path: string): Promise<InstalledModel | null>;
  view: View;
  setView(view: View): void;
  /** Speaks through the aria-live region; `quoted`: the text is a reply's, not the UI's. */
  announce(text: string, quoted?: boolean): void;
  /** Shows an error banner. */
  report(error: AppError): void;
  /** Shows a short confirmation (a catalog key, so it follows a language change). */
  toast(key: MessageKey, vars?: Vars): void;
  chatActions: { current: ChatActions | null };
  /** Documents dropped before the Documents view was shown (on the welcome screen). */
  droppedDocuments: string[];
  takeDroppedDocuments(): void;
}

export const AppContext = createContext<AppContextValue | null>(null);

export function useApp(): AppContextValue {
  const v = useContext(AppContext);
  if (!v) throw new Error('useApp outside <App>');
  return v;
}
