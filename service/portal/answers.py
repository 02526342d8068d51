"""Written answers: the questions of an assignment file, a student's drafts and submitted texts, and the manual
grades instructors give them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from grader.assignment import QuestionConfig, load_assignment
from service.models import Answer, Assignment, ManualGrade, Student, utcnow

MAX_ANSWER_CHARS = 20_000  # about eight pages of text per question


class AnswerError(ValueError):
    """An answer that cannot be saved; the message says what to do."""


@cache
def _questions(config_path: str | None) -> tuple[QuestionConfig, ...]:
    return tuple(load_assignment(Path(config_path) if config_path else None).questions)


def questions(assignment: Assignment) -> tuple[QuestionConfig, ...]:
    """The written questions of the assignment's file, in its order (none for a file without [[questions]])."""
    return _questions(assignment.config_path)


def answers_of(session: Session, student_pk: int, assignment_id: str) -> dict[str, Answer]:
    rows = session.scalars(select(Answer).where(Answer.student_pk == student_pk, Answer.assignment_id == assignment_id))
    return {a.question_id: a for a in rows}


def grades_of(session: Session, student_pk: int, assignment_id: str) -> dict[str, ManualGrade]:
    rows = session.scalars(
        select(ManualGrade).where(ManualGrade.student_pk == student_pk, ManualGrade.assignment_id == assignment_id)
    )
    return {g.question_id: g for g in rows}


def save_answers(session: Session, student: Student, assignment: Assignment, texts: dict[str, str],
                 submit: bool) -> list[str]:  # fmt: skip
    """Store the drafts of the questions in `texts` (unknown question ids are refused); with `submit`, every draft
    of the assignment becomes the submitted text. Returns the ids of the questions whose text was submitted."""
    known = {q.id for q in questions(assignment)}
    unknown = sorted(set(texts) - known)
    if unknown:
        raise AnswerError(f"This assignment has no question '{unknown[0]}'. Reload the page to get its questions.")
    for qid, text in texts.items():
        text = text.replace("\r\n", "\n")
        if len(text) > MAX_ANSWER_CHARS:
            raise AnswerError(f"The answer to '{qid}' is {len(text):,} characters long; the limit is "
                              f"{MAX_ANSWER_CHARS:,}. Shorten it (or link to a figure) and save again.")  # fmt: skip
        texts[qid] = text
    now = utcnow()
    stored = answers_of(session, student.id, assignment.id)
    for qid, text in texts.items():
        answer = stored.get(qid)
        if answer is None:
            answer = stored[qid] = Answer(student_pk=student.id, assignment_id=assignment.id, question_id=qid,
                                          draft=text, saved_at=now, late=False)  # fmt: skip
            session.add(answer)
        elif answer.draft != text:
            answer.draft, answer.saved_at = text, now
    submitted = []
    if submit:
        late = assignment.deadline is not None and now > assignment.deadline
        for qid, answer in stored.items():
            if answer.text != answer.draft and answer.draft.strip():
                answer.text, answer.submitted_at, answer.late = answer.draft, now, late
                submitted.append(qid)
    session.flush()
    return submitted


@dataclass(frozen=True)
class QuestionView:
    """A question with the student's answer and its grade, as a page shows it."""

    q: QuestionConfig
    answer: Answer | None
    grade: ManualGrade | None

    @property
    def draft(self) -> str:
        return self.answer.draft if self.answer else ""

    @property
    def submitted(self) -> str | None:
        return self.answer.text if self.answer else None

    @property
    def unsubmitted_changes(self) -> bool:
        return self.answer is not None and self.answer.draft != (self.answer.text or "") and bool(self.draft.strip())


def question_views(session: Session, student_pk: int, assignment: Assignment) -> list[QuestionView]:
    answers = answers_of(session, student_pk, assignment.id)
    grades = grades_of(session, student_pk, assignment.id)
    return [QuestionView(q, answers.get(q.id), grades.get(q.id)) for q in questions(assignment)]


def for_report(session: Session, student_pk: int, assignment: Assignment) -> list:
    """The written answers as the report prints them (reports.render.WrittenAnswer): each question with the text
    submitted by now, None where nothing was submitted; empty for an assignment without questions."""
    from reports.render import WrittenAnswer  # the worker's side only: the API does not load the report's stack

    answers = answers_of(session, student_pk, assignment.id)
    return [WrittenAnswer(title=q.title, prompt=q.prompt, text=(a.text if (a := answers.get(q.id)) else None),
                          points=q.points, submitted_at=a.submitted_at if a else None)
            for q in questions(assignment)]  # fmt: skip
