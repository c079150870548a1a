"""The org levels indicators are reported and compared at (no statistics imported here)."""

#: Levels of the org tree results are reported at, top down.
ORG_LEVELS = ("university", "faculty", "department", "programme", "teacher")
#: Levels across which units are compared (benchmark, Kruskal-Wallis, Dunn).
COMPARED_LEVELS = ("faculty", "department", "programme", "teacher")
