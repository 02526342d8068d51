// The dashboard's own script, beside htmx. Behaviour hangs on data- attributes, so no page carries inline
// JavaScript (the Content-Security-Policy allows none) and nothing from the database is ever read as code:
// a form with data-confirm="text" asks before it is sent; a select with data-autosubmit sends its form.
"use strict";
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message !== undefined && !window.confirm(message)) {
    event.preventDefault();
  }
});
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) {
    event.target.form.requestSubmit();
  }
});
