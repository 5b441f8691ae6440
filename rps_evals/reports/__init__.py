"""What reads finished runs and shows them: front-end output readers (`rps-evals report`)."""
