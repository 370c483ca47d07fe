/**
 * The app's keyboard shortcuts: one table that both the key handler and the help overlay read,
 * so the overlay always lists what actually works. Ctrl stands for Cmd on macOS.
 */
import type { MessageKey } from './i18n';

export type ShortcutAction =
  | 'newChat'
  | 'focusInput'
  | 'search'
  | 'stop'
  | 'prevConversation'
  | 'nextConversation'
  | 'viewChat'
  | 'viewModels'
  | 'viewSettings'
  | 'viewTranslate'
  | 'viewDocuments'
  | 'help';

export interface Shortcut {
  /** What the help overlay says it does. */
  label: MessageKey;
  /** Keys as shown, e.g. ['Ctrl', 'N']. */
  keys: string[][];
  /** Null for keys handled by the message box itself (Enter, Shift+Enter). */
  action: ShortcutAction | null;
  matches?: (e: KeyboardEvent) => boolean;
}

const isMac = typeof navigator !== 'undefined' && /Mac/.test(navigator.platform);
const mod = (e: KeyboardEvent) => (isMac ? e.metaKey : e.ctrlKey) && !e.altKey;
export const MOD = isMac ? '⌘' : 'Ctrl';

export const SHORTCUTS: Shortcut[] = [
  { label: 'shortcut.newChat', keys: [[MOD, 'N']], action: 'newChat', matches: (e) => mod(e) && !e.shiftKey && e.key.toLowerCase() === 'n' },
  { label: 'shortcut.focusInput', keys: [[MOD, 'L']], action: 'focusInput', matches: (e) => mod(e) && e.key.toLowerCase() === 'l' },
  { label: 'shortcut.send', keys: [['Enter']], action: null },
  { label: 'shortcut.newline', keys: [['Shift', 'Enter']], action: null },
  { label: 'shortcut.stop', keys: [['Esc']], action: 'stop', matches: (e) => e.key === 'Escape' },
  { label: 'shortcut.search', keys: [[MOD, 'K']], action: 'search', matches: (e) => mod(e) && e.key.toLowerCase() === 'k' },
  { label: 'shortcut.prevConversation', keys: [['Alt', '↑']], action: 'prevConversation', matches: (e) => e.altKey && !e.ctrlKey && !e.metaKey && e.key === 'ArrowUp' },
  { label: 'shortcut.nextConversation', keys: [['Alt', '↓']], action: 'nextConversation', matches: (e) => e.altKey && !e.ctrlKey && !e.metaKey && e.key === 'ArrowDown' },
  { label: 'translate.shortcut', keys: [[MOD, 'T']], action: 'viewTranslate', matches: (e) => mod(e) && !e.shiftKey && e.key.toLowerCase() === 't' },
  { label: 'documents.shortcut', keys: [[MOD, 'D']], action: 'viewDocuments', matches: (e) => mod(e) && !e.shiftKey && e.key.toLowerCase() === 'd' },
  { label: 'shortcut.views', keys: [[MOD, '1'], [MOD, '2'], [MOD, '3']], action: null },
  { label: 'shortcut.help', keys: [['F1'], [MOD, '/']], action: 'help', matches: (e) => e.key === 'F1' || (mod(e) && e.key === '/') },
];

/** The action a key press asks for, if any. */
export function actionFor(e: KeyboardEvent): ShortcutAction | null {
  if (mod(e) && ['1', '2', '3'].includes(e.key)) {
    return (['viewChat', 'viewModels', 'viewSettings'] as const)[Number(e.key) - 1];
  }
  for (const s of SHORTCUTS) if (s.action && s.matches?.(e)) return s.action;
  return null;
}
