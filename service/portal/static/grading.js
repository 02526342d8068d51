// Grading written answers from the keyboard. On a question's rubric (Tab reaches its levels), 1-9 pick that level
// and fill its points; Ctrl+Enter saves and goes on to the next student who waits; j / k (outside a field) open
// the next / previous student. In the points and comment fields keys type as usual.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const form = document.querySelector("form#grading");
  if (!form) return;
  const pick = (button) => {
    const input = document.getElementById(button.dataset.target);
    input.value = button.dataset.points;
    input.dispatchEvent(new Event("change", { bubbles: true }));
  };
  form.addEventListener("click", (e) => {
    const level = e.target.closest("button.level");
    if (level) { pick(level); level.closest(".question").querySelector("input[name^=comment_]").focus(); }
  });
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") {
      e.preventDefault();
      form.querySelector("#save-next").click();
      return;
    }
    if (e.target.matches("input, textarea, select") || e.ctrlKey || e.altKey || e.metaKey) return;  // typing
    const question = e.target.closest ? e.target.closest(".question") : null;
    if (question && /^[1-9]$/.test(e.key)) {
      const level = question.querySelectorAll("button.level")[Number(e.key) - 1];
      if (level) { e.preventDefault(); pick(level); level.focus(); }
      return;
    }
    if (e.key === "j" && form.dataset.next) window.location.assign(form.dataset.next);
    if (e.key === "k" && form.dataset.prev) window.location.assign(form.dataset.prev);
  });
});
