"""``nearline eval``: which local model and which tier serve this project best, measured on its
own recent git history.

- ``history``  the commits of the current branch and what each changed (the ``git`` command)
- ``cases``    completion and escalation cases made from a commit (pure)
- ``scoring``  exact match, edit similarity, what a Tab writes; how close a change is (pure)
- ``store``    cases and results kept on disk by commit id
- ``runner``   a case through a local model's completion service, or a tier's escalation
- ``session``  one run: history → cases → candidates, within the cost cap
- ``report``   the table, the JSON and the suggested ``.nearline.toml``; ``html`` the page
"""
