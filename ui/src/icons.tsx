/** The UI's line icons (inline SVG, so nothing is fetched and they follow the text colour). */
import type { JSX } from 'preact';

const PATHS = {
  chat: 'M4 5h16v11H9l-5 4z',
  model: 'M12 3l8 4.5v9L12 21l-8-4.5v-9z M4 7.5l8 4.5 8-4.5 M12 12v9',
  settings:
    'M12 9a3 3 0 1 0 0 6 3 3 0 0 0 0-6z M19 12l2-1.2-1.6-3.2-2.3.5-1.2-1.2.5-2.3L13.2 3 12 5l-1.2-2-3.2 1.6.5 2.3-1.2 1.2-2.3-.5L3 10.8 5 12l-2 1.2 1.6 3.2 2.3-.5 1.2 1.2-.5 2.3 3.2 1.6L12 19l1.2 2 3.2-1.6-.5-2.3 1.2-1.2 2.3.5 1.6-3.2z',
  keyboard: 'M3 7h18v10H3z M6 10h1 M9 10h1 M12 10h1 M15 10h1 M18 10h0 M7 14h10',
  close: 'M6 6l12 12 M18 6L6 18',
  plus: 'M12 5v14 M5 12h14',
  search: 'M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13z M15.5 15.5L20 20',
  send: 'M4 12l16-8-6 16-2.5-6.5z',
  stop: 'M7 7h10v10H7z',
  copy: 'M9 9h10v11H9z M5 15V4h10',
  edit: 'M4 20h4L19 9l-4-4L4 16z',
  refresh: 'M20 11a8 8 0 1 0-2.3 5.7 M20 4v7h-7',
  left: 'M15 5l-7 7 7 7',
  right: 'M9 5l7 7-7 7',
  trash: 'M5 7h14 M10 7V4h4v3 M7 7l1 13h8l1-13',
  rename: 'M4 20h16 M6 16l9-9 3 3-9 9H6z',
  sliders: 'M4 6h10 M18 6h2 M4 12h4 M12 12h8 M4 18h12 M20 18h0 M14 4v4 M8 10v4 M16 16v4',
  star: 'M12 3l2.8 5.8 6.2.9-4.5 4.4 1.1 6.2L12 17.3 6.4 20.3l1.1-6.2L3 9.7l6.2-.9z',
  file: 'M6 3h8l4 4v14H6z M14 3v4h4',
  folder: 'M3 6h6l2 2h10v11H3z',
  download: 'M12 4v11 M7 10l5 5 5-5 M5 20h14',
  translate: 'M4 5h8 M8 3v2 M10 5c-1 4-3 7-6 9 M6 9c1 2 3 4 5 5 M13 20l4-10 4 10 M14.5 16h5',
  swap: 'M7 4L3 8l4 4 M3 8h14 M17 12l4 4-4 4 M21 16H7',
} as const;

export type IconName = keyof typeof PATHS;

export function Icon({ name, class: cls }: { name: IconName; class?: string }): JSX.Element {
  return (
    <svg
      class={cls ? `icon ${cls}` : 'icon'}
      viewBox="0 0 24 24"
      width="20"
      height="20"
      aria-hidden="true"
      focusable="false"
    >
      <path d={PATHS[name]} />
    </svg>
  );
}
