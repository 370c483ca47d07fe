/**
 * Light, dark or the system's choice: sets `data-theme` on <html> (the stylesheet keys off it)
 * and follows the system's setting while "system" is chosen. `applyTheme` returns a function
 * that stops following.
 */
import type { ThemeChoice } from './backend/types';

export function systemPrefersDark(): boolean {
  return typeof matchMedia === 'function' && matchMedia('(prefers-color-scheme: dark)').matches;
}

export function resolveTheme(choice: ThemeChoice): 'light' | 'dark' {
  if (choice === 'light' || choice === 'dark') return choice;
  return systemPrefersDark() ? 'dark' : 'light';
}

export function applyTheme(choice: ThemeChoice, root: HTMLElement = document.documentElement): () => void {
  const set = () => {
    const theme = resolveTheme(choice);
    root.dataset.theme = theme;
    root.style.colorScheme = theme;
  };
  set();
  if (choice !== 'system' || typeof matchMedia !== 'function') return () => {};
  const query = matchMedia('(prefers-color-scheme: dark)');
  query.addEventListener('change', set);
  return () => query.removeEventListener('change', set);
}
