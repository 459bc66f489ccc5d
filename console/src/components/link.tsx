import type { ComponentChildren } from 'preact';
import { BASE, navigate } from '../router.js';

/** A console link (`href` relative to /ui); plain clicks navigate without a page load. */
export function Link(props: { href: string; children: ComponentChildren; class?: string; current?: boolean; 'data-testid'?: string }) {
  return (
    <a
      href={`${BASE}${props.href}`}
      class={props.class}
      aria-current={props.current ? 'page' : undefined}
      data-testid={props['data-testid']}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
