# Every test and tool of the collection runs through tests/setup/run.sh, which installs what is
# missing (Debian packages, pinned venvs) and prints the time each stage took.
#   make demo    the main job: two throwaway registries, a sample repository, demo/playbook.yml
#   make test    everything CI runs: lint (ruff, ansible-lint), changelog lint, ansible-test sanity
#                on two ansible-core versions, unit and functional tests
#   make docs    render the plugin and role docs into docs/modules/ (antsibull-docs)
#   make units PYTEST_ARGS="-k copy"    pytest only (tests/unit and tests/functional)

RUN := tests/setup/run.sh

.PHONY: test deps lint sanity sanity-2.18 sanity-newest units changelog docs bench demo clean

test:
	$(RUN) system venvs lint changelog-lint sanity-2.18 sanity-newest units

deps:
	$(RUN) system venvs

lint:
	$(RUN) venvs lint changelog-lint

sanity:
	$(RUN) venvs sanity-2.18 sanity-newest

sanity-2.18:
	$(RUN) venvs sanity-2.18

sanity-newest:
	$(RUN) venvs sanity-newest

units:
	$(RUN) system venvs units

# Writes CHANGELOG.md and changelogs/changelog.yaml for the version in galaxy.yml from the fragments.
changelog:
	$(RUN) venvs changelog-release

docs:
	$(RUN) venvs docs

bench:
	$(RUN) system venvs bench

demo:
	$(RUN) demo

clean:
	rm -rf tests/output .pytest_cache
