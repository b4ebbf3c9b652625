{{- define "reconciler.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "reconciler.labels" -}}
{{ include "reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "reconciler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "reconciler.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The pod template shared by the Deployment and the sharded StatefulSet. */}}
{{- define "reconciler.podTemplate" -}}
metadata:
  labels:
    {{- include "reconciler.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "reconciler.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.rbac.create }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: reconciler
      image: {{ include "reconciler.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
        {{- if gt (int .Values.shards) 1 }}
        - --shard=auto
        {{- end }}
        {{- range .Values.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.service.port }}
          protocol: TCP
      env:
        - name: RECONCILER_REPO
          value: {{ required "repo.url is required" .Values.repo.url | quote }}
        {{- with .Values.repo.branch }}
        - name: RECONCILER_BRANCH
          value: {{ . | quote }}
        {{- end }}
        - name: RECONCILER_LISTEN
          value: {{ printf "0.0.0.0:%v" .Values.service.port | quote }}
        - name: RECONCILER_WORKDIR
          value: /var/lib/reconciler
        - name: HOME
          value: /var/lib/reconciler
        - name: RECONCILER_LOG_LEVEL
          value: {{ .Values.logLevel | quote }}
        - name: RECONCILER_LOG_FORMAT
          value: {{ .Values.logFormat | quote }}
        {{- with .Values.interval }}
        - name: RECONCILER_INTERVAL
          value: {{ . | quote }}
        {{- end }}
        {{- if gt (int .Values.shards) 1 }}
        - name: POD_NAME
          valueFrom:
            fieldRef: {fieldPath: metadata.name}
        - name: RECONCILER_SHARD_COUNT
          value: {{ .Values.shards | quote }}
        {{- end }}
        # What feeds in the (untrusted) config repository may name as credentials:
        # files under the registry Secret's mount, env vars RECONCILER_FEED_*.
        - name: RECONCILER_CREDENTIALS_DIR
          value: /var/run/secrets/reconciler/registry
        - name: RECONCILER_FEED_ENV_PREFIX
          value: RECONCILER_FEED_
        {{- if .Values.registry.existingSecret }}
        - name: DOCKER_CONFIG
          value: /var/run/secrets/reconciler/registry
        {{- end }}
        {{- if .Values.git.existingSecret }}
        - name: RECONCILER_GIT_USERNAME_FILE
          value: /var/run/secrets/reconciler/git/username
        - name: RECONCILER_GIT_PASSWORD_FILE
          value: /var/run/secrets/reconciler/git/password
        {{- end }}
        {{- if .Values.git.sshSecret }}
        - name: RECONCILER_GIT_SSH_KEY_FILE
          value: /var/run/secrets/reconciler/git-ssh/identity
        - name: RECONCILER_GIT_KNOWN_HOSTS
          value: /var/run/secrets/reconciler/git-ssh/known_hosts
        {{- end }}
        {{- if .Values.webhook.existingSecret }}
        - name: RECONCILER_WEBHOOK_SECRET_FILE
          value: /var/run/secrets/reconciler/webhook/secret
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      # Standalone, the pod is the reconciler's own: not ready until a pass succeeded
      # recently and the config repository was reachable.
      readinessProbe:
        httpGet: {path: /readyz, port: http}
        periodSeconds: 15
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities: {drop: ["ALL"]}
      volumeMounts:
        - {name: work, mountPath: /var/lib/reconciler}
        - {name: tmp, mountPath: /tmp}
        {{- if .Values.registry.existingSecret }}
        - {name: registry-credentials, mountPath: /var/run/secrets/reconciler/registry, readOnly: true}
        {{- end }}
        {{- if .Values.git.existingSecret }}
        - {name: git-credentials, mountPath: /var/run/secrets/reconciler/git, readOnly: true}
        {{- end }}
        {{- if .Values.git.sshSecret }}
        - {name: git-ssh, mountPath: /var/run/secrets/reconciler/git-ssh, readOnly: true}
        {{- end }}
        {{- if .Values.webhook.existingSecret }}
        - {name: webhook-secret, mountPath: /var/run/secrets/reconciler/webhook, readOnly: true}
        {{- end }}
  volumes:
    - name: work
      emptyDir: {sizeLimit: {{ .Values.workDir.sizeLimit }}}
    - name: tmp
      emptyDir: {sizeLimit: 256Mi}
    {{- with .Values.registry.existingSecret }}
    - name: registry-credentials
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - {key: {{ $.Values.registry.key | quote }}, path: config.json}
    {{- end }}
    {{- with .Values.git.existingSecret }}
    - name: git-credentials
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - {key: {{ $.Values.git.usernameKey | quote }}, path: username}
          - {key: {{ $.Values.git.passwordKey | quote }}, path: password}
    {{- end }}
    {{- with .Values.git.sshSecret }}
    - name: git-ssh
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - {key: {{ $.Values.git.sshKeyKey | quote }}, path: identity}
          - {key: {{ $.Values.git.knownHostsKey | quote }}, path: known_hosts}
    {{- end }}
    {{- with .Values.webhook.existingSecret }}
    - name: webhook-secret
      secret:
        secretName: {{ . }}
        defaultMode: 0440
        items:
          - {key: {{ $.Values.webhook.key | quote }}, path: secret}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
