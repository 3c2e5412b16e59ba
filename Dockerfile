# The production image: gunicorn, the Celery worker and beat all run from it (see docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY . .
# collectstatic only reads settings; the URLs are placeholders so that no embedded server starts.
RUN pip install --no-cache-dir -e . \
 && SECRET_KEY=build DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://localhost \
    STATIC_ROOT=/app/.data/static python manage.py collectstatic --noinput
EXPOSE 8000
CMD ["gunicorn", "--config", "python:crm.gunicorn_conf", "crm.wsgi:application", "--bind", "0.0.0.0:8000"]
