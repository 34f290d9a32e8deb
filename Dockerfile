# The Slipway worker and CLI image, for docker-compose users (it cannot be built on machines without a base image).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY client ./client
COPY bench ./bench
COPY test ./test
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json slipway.yaml ./
COPY services ./services
ENTRYPOINT ["node", "dist/client/cli.js"]
CMD ["worker", "--role", "all"]
