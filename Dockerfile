# Modelsmith in a container: serves on 0.0.0.0:7860, data on the /data volume, runs as uid 1000
# (the user Hugging Face Spaces uses).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    TOKENIZERS_PARALLELISM=false \
    MODELSMITH_HOME=/data \
    MODELSMITH_HOST=0.0.0.0 \
    MODELSMITH_PORT=7860

RUN useradd --create-home --uid 1000 user && mkdir -p /data && chown user:user /data
WORKDIR /app
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=user:user . .

USER user
VOLUME ["/data"]
EXPOSE 7860
CMD ["python", "app.py"]
