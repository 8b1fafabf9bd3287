/**
 * The page's two views, chosen by the URL's hash: `#client` (the default)
 * and `#dashboard`. The dashboard holds its live connection to the server
 * only while it is shown.
 */
import { startClientView } from './client-view.js';
import { startDashboardView } from './dashboard-view.js';

const VIEWS = ['client', 'dashboard'];

startClientView(document);
const dashboard = startDashboardView(document);

function showView() {
  const wanted = location.hash.slice(1);
  const current = VIEWS.includes(wanted) ? wanted : 'client';
  for (const view of VIEWS) {
    const section = /** @type {HTMLElement} */ (document.getElementById(view));
    const tab = /** @type {HTMLElement} */ (document.getElementById(`tab-${view}`));
    section.hidden = view !== current;
    if (view === current) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  document.title = current === 'dashboard' ? 'helo — dashboard' : 'helo — client';
  if (current === 'dashboard') dashboard.show();
  else dashboard.hide();
}

window.addEventListener('hashchange', showView);
showView();
