"""The student portal: sign in with the roster token, submit in the browser, follow the grading, read the report
and type the lab's written answers. Instructors grade those answers in the dashboard (service/portal/grading.py)."""
