# The bc-jira image: the official Airflow image plus this repository's package, DAGs and plugin.
# Build: docker compose build   (docker-compose.yaml uses this file for every Airflow service)
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}
ARG AIRFLOW_VERSION

# Install as the airflow user (the image's rule); pin apache-airflow so pip never moves the image's Airflow.
# Test-only pins (pytest, requests-mock, ruff) stay out of the runtime image.
COPY --chown=airflow:0 requirements.txt pyproject.toml README.md /opt/bc-jira/
COPY --chown=airflow:0 include /opt/bc-jira/include
RUN grep -vE '^(pytest|requests-mock|ruff)==' /opt/bc-jira/requirements.txt > /tmp/requirements.txt \
 && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /tmp/requirements.txt /opt/bc-jira

COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 plugins /opt/airflow/plugins
