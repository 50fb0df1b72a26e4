#!/bin/sh
# Installs Maven and Gradle from their official distribution archives (pinned versions).
set -eu
fetch() { # url dest
  if command -v curl >/dev/null 2>&1; then curl -fsSL "$1" -o "$2"; else wget -q "$1" -O "$2"; fi
}
# A base may have unzip but neither curl nor wget: the download needs one of them.
if ! command -v unzip >/dev/null 2>&1 || ! { command -v curl || command -v wget; } >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends unzip curl && rm -rf /var/lib/apt/lists/*
fi
if ! command -v mvn >/dev/null 2>&1; then
  fetch "https://archive.apache.org/dist/maven/maven-3/${MAVEN_VERSION}/binaries/apache-maven-${MAVEN_VERSION}-bin.tar.gz" /tmp/maven.tgz
  mkdir -p /opt/maven && tar -xzf /tmp/maven.tgz -C /opt/maven --strip-components=1 && rm /tmp/maven.tgz
fi
if ! command -v gradle >/dev/null 2>&1; then
  fetch "https://services.gradle.org/distributions/gradle-${GRADLE_VERSION}-bin.zip" /tmp/gradle.zip
  unzip -q /tmp/gradle.zip -d /opt && mv "/opt/gradle-${GRADLE_VERSION}" /opt/gradle && rm /tmp/gradle.zip
fi
