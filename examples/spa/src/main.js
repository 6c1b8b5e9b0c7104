import './style.css';

// Client-side routes: nginx falls back to index.html for every path, so the
// app decides what to show from location.pathname.
const routes = {
  '/': 'Welcome to krgeobuk.',
  '/login': 'Sign in with your krgeobuk account.',
};

function render() {
  const app = document.querySelector('#app');
  const text = routes[window.location.pathname] ?? 'Page not found.';
  app.textContent = text;
}

window.addEventListener('popstate', render);
render();
